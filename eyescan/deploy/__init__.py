"""Deployment: ONNX export, the onnxruntime backend and benchmarks."""
