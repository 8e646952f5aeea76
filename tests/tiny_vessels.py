"""Tiny vessels weights for the reliability tests, trained once per test session.

A 1-epoch ``eyescan train vessels`` on a synthetic DRIVE layout (64-pixel
images, 32-pixel patches, 4 patches): seconds on a CPU. The numbers it reaches
mean nothing; the tests only need real weights with a real model card.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from eyescan.testing import invoke_cli, json_lines

#: Recipe of the tiny run (also used by the training-resume test).
RECIPE = {
    "epochs": 1,
    "batch_size": 2,
    "optimizer": "adam",
    "lr": 0.002,
    "patch_size": 32,
    "patches_per_epoch": 4,
    "val_images": 1,
}

_trained: dict[str, Path] = {}


def write_recipe(path: Path, **changes: object) -> Path:
    path.write_text(json.dumps({**RECIPE, **changes}), encoding="utf-8")
    return path


def drive_data(root: Path) -> Path:
    from eyescan.data.synthetic import write_drive_layout

    if not (root / "training").exists():
        write_drive_layout(root, n_train=3, n_test=1, size=64, seed=0)
    return root


def train_tiny(root: Path) -> Path:
    """Train (once per process) and return the default model's weights path."""
    if "weights" not in _trained:
        data = drive_data(root / "drive")
        recipe = write_recipe(root / "recipe.json")
        result = invoke_cli(
            "train", "vessels", data, "--config", recipe, "--out", root / "run", "--json"
        )
        assert result.exit_code == 0, result.output
        _trained["weights"] = Path(json_lines(result.stdout)[-1]["weights"])
    return _trained["weights"]


@pytest.fixture(scope="session")
def vessels_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real vessels weights (+ model card) from a 1-epoch run on synthetic data."""
    return train_tiny(tmp_path_factory.mktemp("tiny_vessels"))


def fundus_png(path: Path, size: int = 48, seed: int = 0) -> Path:
    """A small synthetic fundus photograph saved at ``path`` (any PIL format)."""
    from PIL import Image

    from eyescan.data.synthetic import make_fundus

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_fundus(size, seed=seed).image).save(path)
    return path


def _default_sigint() -> None:
    """In the child: SIGINT as a terminal delivers it. A test suite started in the background
    by a non-interactive shell (``cmd &``) inherits SIGINT ignored, and Python keeps an
    ignored SIGINT ignored, so the interrupt tests would see the run finish instead."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def eyescan_process(*args: object, **popen: object) -> subprocess.Popen:
    """``eyescan ARGS`` as a real child process (stdout/stderr piped, one torch thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EYESCAN_DEBUG": ""}
    return subprocess.Popen(
        [sys.executable, "-m", "eyescan", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=_default_sigint,
        **popen,
    )
