"""Data-parallel training: ``fit`` under torchrun with 2 CPU processes (gloo).

Run as a script by torchrun, this file is the worker: each rank trains the
same tiny regression problem and writes what it saw and its final weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from eyescan.engine import distributed
from eyescan.engine.training import TrainConfig, WeightedLoss, fit

BATCHES, BATCH = 4, 8


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * BATCH, 3, generator=generator)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3


def _batches(epoch: int):
    x, y = _data()
    for i in range(BATCHES):
        rows = slice(i * BATCH, (i + 1) * BATCH)
        yield {"image": x[rows], "target": y[rows], "index": torch.tensor(i)}


def _val():
    x, y = _data()
    for i in range(0, len(x), 10):  # 4 batches of unequal size
        yield {"image": x[i : i + 10], "target": y[i : i + 10]}


MSE = WeightedLoss("mse", lambda out, b: torch.nn.functional.mse_loss(out, b["target"]))
CONFIG = {"epochs": 2, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "seed": 3}


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 1)


def worker(out: Path) -> None:
    """One torchrun process: train, then write what this rank saw and ended with."""
    rank = distributed.rank()
    model = _model(100 + rank)  # different start per rank: DDP must use rank 0's
    seen, events = [], []

    def forward(net, batch):
        if "index" in batch:  # training batches (validation ones have none)
            seen.append(int(batch["index"]))
        return net(batch["image"])

    result = fit(
        model,
        _batches,
        _val,
        [MSE],
        TrainConfig.from_dict(CONFIG),
        out / "run",
        {"model": "lin"},
        forward=forward,
        on_event=events.append,
    )
    report = {
        "rank": rank,
        "world": distributed.world_size(),
        "seen": seen,
        "events": len(events),
        "weight": model.weight.detach().flatten().tolist(),
        "bias": model.bias.detach().tolist(),
        "history": [{k: v for k, v in h.items() if k != "seconds"} for h in result.history],
    }
    (out / f"rank{rank}.json").write_text(json.dumps(report))


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        __file__,
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def _ranks(out: Path) -> list[dict]:
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_both_ranks_ran_on_their_share(ddp_run):
    ranks = _ranks(ddp_run)
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["seen"] == [0, 2, 0, 2] and ranks[1]["seen"] == [1, 3, 1, 3]
    assert ranks[0]["events"] > 0 and ranks[1]["events"] == 0  # progress from rank 0 only


def test_gradients_are_synchronised(ddp_run):
    r0, r1 = _ranks(ddp_run)
    assert r0["weight"] == r1["weight"] and r0["bias"] == r1["bias"]
    assert r0["history"] == r1["history"]  # losses reduced across ranks, same decisions


def test_matches_one_process_on_the_combined_batches(ddp_run, tmp_path):
    """2 ranks × batch 8 (averaged gradients) == 1 process × batch 16, same seed."""

    def combined(epoch):
        parts = list(_batches(epoch))
        for a, b in zip(parts[0::2], parts[1::2]):
            yield {k: torch.cat([a[k], b[k]]) for k in ("image", "target")}

    model = _model(100)
    result = fit(model, combined, _val, [MSE], TrainConfig.from_dict(CONFIG), tmp_path, {})
    r0 = _ranks(ddp_run)[0]
    assert model.weight.detach().flatten().tolist() == pytest.approx(r0["weight"], abs=1e-6)
    assert model.bias.detach().tolist() == pytest.approx(r0["bias"], abs=1e-6)
    for mine, theirs in zip(result.history, r0["history"]):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-5)


def test_rank_zero_alone_wrote_one_checkpoint(ddp_run):
    run = ddp_run / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "last_state.pt",
        "lin.json",
        "lin.safetensors",
        "metrics.jsonl",
    ]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    card = json.loads((run / "lin.json").read_text())
    assert card["training"]["processes"] == 2


@pytest.mark.parametrize(
    ("count", "shards", "expected"),
    [
        (4, 2, [[0, 2], [1, 3]]),
        (5, 2, [[0, 2, 4], [1, 3, 0]]),  # padded with the first batch
        (7, 3, [[0, 3, 6], [1, 4, 0], [2, 5, 1]]),
        (1, 3, [[0], [0], [0]]),
    ],
)
def test_shard_batches_gives_every_rank_the_same_steps(count, shards, expected):
    got = [list(distributed.shard_batches(range(count), r, shards)) for r in range(shards)]
    assert got == expected


def test_shard_batches_without_padding_sees_each_once():
    got = [list(distributed.shard_batches(range(5), r, 2, pad=False)) for r in range(2)]
    assert got == [[0, 2, 4], [1, 3]]


def test_single_process_defaults(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.init_from_env("cpu") is False
    assert distributed.mean_across({"loss": 3.0, "mse": 1.0}, 2) == {"loss": 1.5, "mse": 0.5}
    assert distributed.resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert distributed.resolve_device("auto") == "cpu"
    model = torch.nn.Linear(2, 1)
    assert distributed.wrap(model, "cpu") is model and distributed.unwrap(model) is model


def test_nproc_command_line():
    args = ["train", "vessels", "data", "--nproc", "2", "--epochs", "1", "--nproc=4"]
    assert distributed.without_option(args, "--nproc") == [
        "train",
        "vessels",
        "data",
        "--epochs",
        "1",
    ]
    command = distributed.torchrun_command(2, ["train", "x"])
    assert command[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "eyescan",
        "train",
        "x",
    ]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_on_cpu(tmp_path, amp):
    config = TrainConfig.from_dict({**CONFIG, "epochs": 1, "amp": amp})
    result = fit(_model(0), _batches, _val, [MSE], config, tmp_path, {"model": "lin"})
    assert result.history[0]["train_loss"] > 0 and result.best_weights.exists()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
