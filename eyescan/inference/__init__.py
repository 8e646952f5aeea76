"""Prediction: the folder pipeline, tiled segmentation, sharding and explanation maps."""
