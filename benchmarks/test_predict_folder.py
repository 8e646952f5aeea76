"""End-to-end folder prediction (decode, preprocess, infer, write) per task and backend."""

from __future__ import annotations

import pytest

from eyescan.errors import EyescanError
from eyescan.inference import predicting
from eyescan.plugins import registry as plugins

from .conftest import load, native_size, task_names

IMAGES = 8


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Synthetic photographs per native size (written once)."""
    from eyescan.data.synthetic import write_folder

    made = {}

    def folder(size: tuple[int, int]):
        if size not in made:
            root = tmp_path_factory.mktemp(f"in{size[0]}x{size[1]}")
            made[size] = write_folder(root, n=IMAGES, size=size, seed=0)
        return made[size]

    return folder


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize("task_name", task_names())
def test_predict_folder(benchmark, folders, tmp_path, task_name, backend):
    registry = plugins.get_registry()
    task = registry.task(task_name)
    paths = folders(native_size(task))
    items = predicting.safe_stems([(p, p.parent) for p in paths])
    try:
        loaded = load(registry, task, task.default_model, backend)
    except EyescanError as exc:
        pytest.skip(str(exc))

    failed: list[str] = []  # checked after the run: a skip inside it leaves no timing

    def run():
        records = list(predicting.run(registry, task, loaded, items, tmp_path, batch_size=1))
        failed.extend(r["error"]["message"] for r in records if not r["ok"])
        return records

    benchmark.extra_info.update(
        {"task": task_name, "model": loaded.name, "backend": backend, "images": IMAGES}
    )
    benchmark.pedantic(run, rounds=1, warmup_rounds=0)
    assert not failed, f"predict failed on {len(failed)} images: {failed[0]}"
