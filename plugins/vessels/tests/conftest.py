"""Shared fixtures of the vessels tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_recipe() -> dict:
    """A 1-epoch recipe of a 4-channel U-Net on 32-px patches: seconds on a CPU (copy it
    with ``{**tiny_recipe, ...}`` to change a key)."""
    return {
        "epochs": 1,
        "batch_size": 2,
        "optimizer": "adam",
        "lr": 0.01,
        "patch_size": 32,
        "patches_per_epoch": 4,
        "val_images": 1,
        "model_options": {"width": 4, "depth": 2},
    }
