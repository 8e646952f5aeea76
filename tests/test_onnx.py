"""ONNX export and the onnxruntime backend.

Every registered model of every installed task is exported at a tiny input
and must pass the parity check (raw outputs and prediction values). Models
too big to export in a few seconds are skipped unless EYESCAN_EXPORT_ALL=1.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from eyescan.deploy import onnx_backend, onnx_export
from eyescan.errors import EyescanError, WeightsError
from eyescan.models.loading import LoadedModel, create
from eyescan.models.weights import save_weights
from eyescan.plugins import registry as plugins
from eyescan.testing import invoke_cli, json_lines

from . import tiny_vessels
from .tiny_vessels import fundus_png

vessels_weights = tiny_vessels.vessels_weights  # the session fixture

#: Export and parity cost about six predicts plus serialising the weights: models
#: slower or bigger than this take more than a few seconds and are skipped
#: (EYESCAN_EXPORT_ALL=1 runs them all).
MAX_PREDICT_SECONDS = 5.0
MAX_PARAMETERS = 40_000_000
SIZE = 64


def _registered() -> list[tuple[str, str]]:
    registry = plugins.build_registry()
    return sorted(registry.models)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny inputs: one thread is faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _untrained(registry, task, name: str) -> LoadedModel:
    torch.manual_seed(0)
    module = create(registry, task.name, name).eval()
    with torch.no_grad():  # untrained detectors tie their scores; break the ties
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return LoadedModel(task.name, name, module)


@pytest.mark.parametrize(("task_name", "model_name"), _registered())
def test_every_model_exports_with_parity(tmp_path, task_name, model_name):
    registry = plugins.get_registry()
    task = registry.task(task_name)
    loaded = _untrained(registry, task, model_name)
    everything = bool(os.environ.get("EYESCAN_EXPORT_ALL"))
    parameters = sum(p.numel() for p in loaded.module.parameters())
    if parameters > MAX_PARAMETERS and not everything:
        pytest.skip(f"{parameters:,} parameters: slow to export (EYESCAN_EXPORT_ALL=1 runs it)")
    item = task.example_input(SIZE)
    started = time.perf_counter()
    try:
        with torch.no_grad():
            registry.hook.predict(task=task, model=loaded, batch=[item])
    except WeightsError as exc:  # e.g. a classifier whose predict needs its detector's weights
        pytest.skip(f"predict needs weights this checkout lacks: {exc}")
    seconds = time.perf_counter() - started
    if seconds > MAX_PREDICT_SECONDS and not everything:
        pytest.skip(f"one predict takes {seconds:.1f} s: too slow here (EYESCAN_EXPORT_ALL=1)")
    try:
        card = onnx_export.export(registry, task, loaded, tmp_path / f"{model_name}.onnx", SIZE)
    except onnx_export.NotExportableError as exc:
        pytest.skip(str(exc))
    parity = card["onnx"]["parity"]
    assert parity["ok"], parity
    assert parity["output_max_abs_diff"] <= parity["output_tolerance"]
    saved = json.loads((tmp_path / f"{model_name}.onnx.json").read_text())
    assert saved["sha256"] == onnx_backend.sha256_bytes(
        (tmp_path / f"{model_name}.onnx").read_bytes()
    )
    assert saved["task"] == task_name and saved["model"] == model_name
    axes = saved["onnx"]["inputs"][0]["dynamic_axes"]
    if saved["onnx"]["per_item"]:
        assert set(axes) == {"1", "2"}  # one C×H×W image per call
    elif task.kind == "segment":
        assert set(axes) == {"0", "2", "3"}
    else:
        assert set(axes) == {"0"}
    print(
        f"{task_name}/{model_name}: exported and checked in {time.perf_counter() - started:.1f} s"
    )


def test_onnx_module_stands_in_for_the_torch_module(tmp_path):
    registry = plugins.get_registry()
    task = registry.task("vessels")
    loaded = _untrained(registry, task, task.default_model)
    data, card = onnx_export.export_bytes(registry, task, loaded, SIZE)
    module = onnx_backend.loaded_from_bytes(data, card).module
    assert module.stride == loaded.module.stride
    assert next(module.parameters()).device.type == "cpu"
    assert module.eval() is module
    with pytest.raises(AttributeError, match="recorded at export: .*depth, stride"):
        module.no_such_attribute  # noqa: B018
    with pytest.raises(EyescanError, match="inference only"):
        module.train()
    x = torch.randn(3, 3, 48, 80)  # another batch size and shape than at export
    with torch.no_grad():
        expected = loaded.module(x)
    assert torch.allclose(module(x), expected, atol=1e-4)


def test_structures_round_trip():
    tensors = [torch.zeros(1), torch.ones(2), torch.full((3,), 2.0)]
    value = [{"boxes": tensors[0], "scores": (tensors[1], tensors[2])}]
    structure, flat = onnx_backend.flatten(value)
    assert [t.shape for t in flat] == [t.shape for t in tensors]
    rebuilt = onnx_backend.rebuild(structure, iter(flat))
    assert rebuilt[0]["scores"][1] is tensors[2]
    with pytest.raises(EyescanError, match="not str"):
        onnx_backend.flatten(["text"])


def test_onnx_beside_weights_is_used_only_when_it_fits(tmp_path):
    registry = plugins.get_registry()
    task = registry.task("vessels")
    weights = tmp_path / "unet.safetensors"
    card: dict = {"task": "vessels", "model": "unet"}
    save_weights(_untrained(registry, task, "unet").module, weights, card)
    torch_model = onnx_backend.load_torch(registry, task, None, weights)
    onnx_export.export(registry, task, torch_model, tmp_path / "unet.onnx", SIZE)

    picked = onnx_backend.load_for_backend(registry, task, None, weights, "onnx")
    assert picked.backend == "onnx" and picked.card["onnx_origin"].startswith("file")
    assert "file" in onnx_backend.describe(picked)

    torch.manual_seed(1)  # new weights: the ONNX file beside them is stale
    save_weights(create(registry, "vessels", "unet"), weights, card)
    fresh = onnx_backend.load_for_backend(registry, task, None, weights, "onnx")
    assert "stale" in fresh.card["onnx_origin"]

    onnx_file = tmp_path / "unet.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-1] + b"\0")
    with pytest.raises(WeightsError, match="SHA-256"):
        onnx_backend.load(registry, task, None, onnx_file)


def test_predict_backend_onnx_matches_torch(tmp_path, vessels_weights):
    images = [fundus_png(tmp_path / "in" / f"eye{i}.png", size=64, seed=i) for i in range(2)]
    runs = {}
    for backend in ("torch", "onnx"):
        out = tmp_path / backend
        result = invoke_cli(
            "predict", "vessels", tmp_path / "in", "--weights", vessels_weights,
            "--backend", backend, "--out", out, "--json",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[backend] = {r["id"]: r for r in json_lines(result.stdout)}
    assert "backend onnx" in result.stderr
    assert set(runs["torch"]) == {p.stem for p in images}
    for stem, record in runs["torch"].items():
        onnx_record = runs["onnx"][stem]
        assert (
            abs(record["outputs"]["vessel_fraction"] - onnx_record["outputs"]["vessel_fraction"])
            <= 1e-3
        )
        torch_prob = _png(tmp_path / "torch" / record["files"]["probability"])
        onnx_prob = _png(tmp_path / "onnx" / onnx_record["files"]["probability"])
        assert np.abs(torch_prob.astype(int) - onnx_prob).max() <= 1


def test_export_command_and_onnx_weights(tmp_path, vessels_weights):
    target = tmp_path / "unet.onnx"
    result = invoke_cli(
        "export", "vessels", "--weights", vessels_weights, "--onnx", target, "--json"
    )
    assert result.exit_code == 0, result.output
    card = json_lines(result.stdout)[0]
    assert card["source_sha256"] and card["onnx"]["parity"]["ok"]
    assert onnx_backend.card_path(target).exists()
    image = fundus_png(tmp_path / "eye.png", size=64)
    result = invoke_cli(
        "predict",
        "vessels",
        image,
        "--weights",
        target,
        "--quantize",
        "--out",
        tmp_path / "q",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert "int8 cost vs float on 1 images" in " ".join(result.stderr.split())
    (record,) = json_lines(result.stdout)
    assert record["ok"] and 0.0 <= record["outputs"]["vessel_fraction"] <= 1.0


def test_export_refuses_wrong_task(tmp_path, vessels_weights):
    target = tmp_path / "unet.onnx"
    invoke_cli("export", "vessels", "--weights", vessels_weights, "--onnx", target)
    registry = plugins.get_registry()
    other = next((t for t in registry.tasks.values() if t.name != "vessels"), None)
    if other is None:
        pytest.skip("only one task installed")
    with pytest.raises(WeightsError, match="not"):
        onnx_backend.load(registry, other, None, target)


def _png(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def test_detections_compare_in_a_fixed_order():
    boxes = torch.tensor([[1.0, 2, 3, 4], [5, 6, 7, 8], [0, 0, 1, 1]])
    found = {
        "boxes": boxes,
        "scores": torch.tensor([0.5, 0.5, 0.4]),
        "labels": torch.tensor([1, 1, 2]),
    }
    swapped = {k: v[[1, 0, 2]] for k, v in found.items()}
    a, b = onnx_export.canonical_detections([found]), onnx_export.canonical_detections([swapped])
    for key in found:
        assert torch.equal(a[0][key], b[0][key])
    assert a[0]["labels"].tolist() == [1, 1, 2]
    assert onnx_export.canonical_detections(torch.ones(2)).shape == (2,)  # not detections
