"""``eyescan benchmark``: the JSON record, and the FLOP counter it relies on."""

from __future__ import annotations

import math

import pytest
import torch

from eyescan.deploy import benchmarking
from eyescan.models.cost import count_flops
from eyescan.reports.records import BENCHMARK_SCHEMA
from eyescan.testing import invoke_cli, json_lines

FIELDS = {
    "schema": str,
    "task": str,
    "model": str,
    "backend": str,
    "batch_size": int,
    "size": int,
    "model_input": list,
    "latency_ms_median": float,
    "latency_ms_p95": float,
    "images_per_s": float,
    "forward_latency_ms_median": float,
    "forward_latency_ms_p95": float,
    "forward_images_per_s": float,
    "gflops_per_image": float,
    "achieved_gflop_s": float,
    "matmul_peak_gflop_s": float,
    "peak_fraction": float,
    "peak_rss_mb": float,
    "python_peak_mb": float,
    "threads": int,
    "cpus": int,
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny inputs: one thread is faster than two on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_benchmark_json(backend):
    result = invoke_cli(
        "benchmark", "vessels", "--backend", backend, "--size", 32, "--batch-size", 2,
        "--iterations", 3, "--warmup", 1, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (record,) = json_lines(result.stdout)
    for key, kind in FIELDS.items():
        assert isinstance(record[key], kind), (key, record[key])
    assert record["schema"] == BENCHMARK_SCHEMA and record["backend"] == backend
    assert record["model_input"] == [[1, 3, 32, 32]]
    assert record["latency_ms_p95"] >= record["latency_ms_median"] > 0
    assert math.isclose(record["images_per_s"], 2e3 / record["latency_ms_median"])
    assert record["gflops_per_image"] > 0 and record["matmul_peak_gflop_s"] > 0
    assert math.isclose(
        record["peak_fraction"],
        record["gflops_per_image"] * record["forward_images_per_s"] / record["matmul_peak_gflop_s"],
    )


def test_benchmark_table():
    result = invoke_cli("benchmark", "vessels", "--size", 32, "--iterations", 1, "--warmup", 0)
    assert result.exit_code == 0, result.output
    assert "forward_images_per_s" in result.stdout and "peak_fraction" in result.stdout


def test_flop_counter_matches_the_arithmetic():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 10)
    )
    conv = 2 * 8 * 3 * 3 * 3 * 16 * 16  # multiply-adds × 2 per output pixel and channel
    linear = 2 * 8 * 16 * 16 * 10
    assert count_flops(model, torch.zeros(1, 3, 16, 16)) == conv + linear


def test_batched_arguments():
    (x,) = benchmarking.batched((torch.zeros(1, 3, 4, 4),), 5)
    assert x.shape == (5, 3, 4, 4)
    (images,) = benchmarking.batched(([torch.zeros(3, 4, 4)],), 3)
    assert len(images) == 3
