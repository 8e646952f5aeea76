"""Each registered model's forward pass at its native input, torch and onnxruntime."""

from __future__ import annotations

import pytest
import torch

from eyescan.deploy.onnx_backend import torch_twin
from eyescan.deploy.onnx_export import predict_recorded
from eyescan.errors import EyescanError
from eyescan.models.cost import count_flops
from eyescan.plugins import registry as plugins

from .conftest import load, native_image, registered_models


@pytest.mark.parametrize("backend", ["torch", "onnx"])
@pytest.mark.parametrize(("task_name", "model_name"), registered_models())
def test_forward(benchmark, task_name, model_name, backend):
    registry = plugins.get_registry()
    task = registry.task(task_name)
    item = task.preprocess(native_image(task), "<benchmark>")
    try:
        loaded = load(registry, task, model_name, backend)
        _, calls = predict_recorded(registry, task, loaded, [item])
    except EyescanError as exc:  # composite models, missing companion weights
        pytest.skip(str(exc))
    args = calls[0]
    flops = count_flops(torch_twin(registry, loaded), *args)
    benchmark.extra_info.update(
        {
            "task": task_name,
            "model": model_name,
            "backend": backend,
            "input": [list(t.shape) for t in _tensors(args)],
            "gflops": flops / 1e9,
            "threads": torch.get_num_threads(),
        }
    )

    def forward():
        with torch.no_grad():
            return loaded.module(*args)

    benchmark.pedantic(forward, rounds=3, warmup_rounds=1)


def _tensors(args):
    from eyescan.deploy.onnx_backend import flatten

    return flatten(args)[1]
