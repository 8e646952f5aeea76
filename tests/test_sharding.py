"""``eyescan predict --shard K/N`` and ``eyescan merge`` give the records of one unsharded run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import weights as weights_io
from eyescan.inference import sharding
from eyescan.plugins import registry as plugins
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, scale_model


@pytest.fixture
def toy(tmp_path) -> tuple[Path, Path]:
    """The toy task registered, its weights, and a folder of 9 inputs (one unreadable)."""
    plugins.reset_registry([("toy", ToyPlugin())])
    weights = tmp_path / "w" / "scale.safetensors"
    weights_io.save_weights(scale_model(), weights, {"task": "toy", "model": "scale"})
    images = tmp_path / "images"
    names = ["a.png", "a.jpg", "b.png", "sub/c.png", "sub/d.png", "sub/deep/e.png", "f g.png"]
    names += ["h.png"]
    for i, name in enumerate(names):
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((6, 6, 3), 20 * i, np.uint8)).save(images / name)
    (images / "broken.png").write_bytes(b"not a png")
    return weights, images


def _predict(invoke, weights, images, out, *extra):
    result = invoke("predict", "toy", images, "--weights", weights, "--out", out, *extra)
    assert result.exit_code in (0, 1), result.output  # 1: the shard with the broken image
    return result


def _comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("timings_ms", "resumed")} for r in records]


def _records(path: Path) -> list[dict]:
    return json_lines(path.read_text())


def test_three_shards_merge_to_the_unsharded_records(invoke, toy, tmp_path):
    weights, images = toy
    _predict(invoke, weights, images, tmp_path / "full")
    full = _records(tmp_path / "full" / "predictions.jsonl")
    assert len(full) == 9 and {"a", "a-2"} <= {r["id"] for r in full}
    for k in (1, 2, 3):
        _predict(invoke, weights, images, tmp_path / f"part{k}", "--shard", f"{k}/3")
    sizes = [
        len(_records(tmp_path / f"part{k}" / f"predictions.shard-{k}-of-3.jsonl"))
        for k in (1, 2, 3)
    ]
    assert sizes == [3, 3, 3]

    parts = [tmp_path / f"part{k}" for k in (3, 1, 2)]  # any order
    merged = invoke("merge", *parts, "--out", tmp_path / "merged")
    assert merged.exit_code == 1, merged.output  # like predict: one input failed
    assert _comparable(_records(tmp_path / "merged" / "predictions.jsonl")) == _comparable(full)
    outputs = {p.relative_to(tmp_path / "full") for p in (tmp_path / "full").rglob("*")}
    copied = {p.relative_to(tmp_path / "merged") for p in (tmp_path / "merged").rglob("*")}
    assert copied == outputs  # per-image JSON and images copied, nothing else


def test_shards_sharing_one_folder_with_resume(invoke, toy, tmp_path):
    weights, images = toy
    _predict(invoke, weights, images, tmp_path / "full")
    out = tmp_path / "shared"
    for k in (1, 2, 3):
        _predict(invoke, weights, images, out, "--shard", f"{k}/3")
    resumed = _predict(invoke, weights, images, out, "--shard", "2/3", "--resume", "--json")
    assert all(r.get("resumed") for r in json_lines(resumed.stdout) if r["ok"])
    merged = invoke("merge", out, "--json")
    records = json_lines(merged.stdout)
    assert _comparable(records) == _comparable(_records(tmp_path / "full" / "predictions.jsonl"))
    assert _records(out / "predictions.jsonl") == records


def test_merge_refuses_missing_or_mixed_shards(invoke, toy, tmp_path):
    weights, images = toy
    for k in (1, 2):
        _predict(invoke, weights, images, tmp_path / "out", "--shard", f"{k}/3")
    result = invoke("merge", tmp_path / "out")
    assert result.exit_code == 1 and "missing shards 3/3" in result.stderr
    _predict(invoke, weights, images / "sub", tmp_path / "other", "--shard", "3/3")
    result = invoke("merge", tmp_path / "out", tmp_path / "other")
    assert result.exit_code == 1 and "different input list" in result.stderr


def test_bad_shard_option_and_empty_shard(invoke, toy, tmp_path):
    weights, images = toy
    result = invoke("predict", "toy", images, "--weights", weights, "--shard", "4/3")
    assert result.exit_code == 2 and "between 1 and N" in result.stderr
    one = images / "a.png"
    result = invoke("predict", "toy", one, "--weights", weights, "-o", tmp_path, "--shard", "2/2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "predictions.shard-2-of-2.jsonl").read_text() == ""
    manifest = json.loads((tmp_path / "shard-2-of-2.json").read_text())
    assert manifest["positions"] == [] and manifest["inputs"] == 1


@pytest.mark.parametrize("total", [0, 1, 5, 12])
@pytest.mark.parametrize("count", [1, 3, 4])
def test_positions_cover_every_input_once(total, count):
    parts = [sharding.positions(total, sharding.Shard(k, count)) for k in range(1, count + 1)]
    assert sorted(i for part in parts for i in part) == list(range(total))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0"])
def test_parse_shard_rejects(text):
    with pytest.raises(ValueError):
        sharding.parse_shard(text)


def test_parse_shard():
    assert sharding.parse_shard(" 2 / 5 ") == sharding.Shard(2, 5)
    assert str(sharding.Shard(2, 5)) == "2/5" and sharding.Shard(2, 5).name == "shard-2-of-5"
