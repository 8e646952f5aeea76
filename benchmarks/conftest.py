"""Shared set-up of the benchmark suite (run: see benchmarks/README.md).

Every registered model of every installed task is benchmarked, so plugins
that land later are covered without editing the suite. Models run with their
task's shipped weights when there are some, else untrained (speed does not
depend on the weights). Inputs are synthetic fundus photographs at the
task's native size: ``task.native_size`` (height, width) when the task sets
one, else DRIVE's 584×565.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from eyescan.plugins import registry as plugins

DRIVE_SIZE = (584, 565)


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    plugins.reset_registry()
    yield
    plugins.reset_registry()


def registered_models() -> list[tuple[str, str]]:
    return sorted(plugins.build_registry().models)


def task_names() -> list[str]:
    return sorted(plugins.build_registry().tasks)


def native_size(task: Any) -> tuple[int, int]:
    return tuple(getattr(task, "native_size", None) or DRIVE_SIZE)


def native_image(task: Any, seed: int = 0) -> Any:
    """A synthetic fundus photograph (uint8 H×W×3) at the task's native size."""
    from eyescan.data.synthetic import make_fundus

    return make_fundus(native_size(task), seed=seed).image


def load(registry: Any, task: Any, model: str, backend: str) -> Any:
    """The model for ``backend``: shipped weights if any, else untrained."""
    from eyescan.deploy import onnx_backend

    return onnx_backend.load_for_backend(registry, task, model, None, backend, random_init=True)
