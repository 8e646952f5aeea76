"""Training: the one training loop, recipes, checkpoints and data-parallel helpers."""
