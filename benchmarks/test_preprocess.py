"""Decoding and each task's preprocessing of one native-size photograph."""

from __future__ import annotations

import pytest

from eyescan.imaging.imageio import read_image
from eyescan.plugins import registry as plugins

from .conftest import native_image, task_names


def test_decode_png(benchmark, tmp_path):
    from PIL import Image

    from eyescan.data.synthetic import make_fundus

    path = tmp_path / "eye.png"
    Image.fromarray(make_fundus((584, 565), seed=0).image).save(path)
    benchmark(read_image, path)


@pytest.mark.parametrize("task_name", task_names())
def test_preprocess(benchmark, task_name):
    registry = plugins.get_registry()
    task = registry.task(task_name)
    image = native_image(task)
    benchmark.extra_info.update({"task": task_name, "image": list(image.shape[:2])})
    benchmark.pedantic(task.preprocess, (image, "<benchmark>"), rounds=5, warmup_rounds=1)
