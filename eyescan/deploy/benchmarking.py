"""Model speed on this machine: latency percentiles, throughput, memory, FLOPs.

Two things are timed after warm-up runs: the task's ``predict`` hook on a
batch of preprocessed images (model plus the task's own pre/post-processing
inside ``predict``) and the raw model forward on the tensors ``predict``
feeds it, stacked to the batch size. FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products,
attention: 2 FLOPs per multiply-add; element-wise work is not counted) and
compared with this machine's float32 matmul peak, measured on the spot.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from eyescan.models.cost import count_flops
from eyescan.reports.records import BENCHMARK_SCHEMA


def matmul_peak_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Best float32 ``n×n`` matmul rate with this process's torch threads, in GFLOP/s."""
    import torch

    return _matmul_peak(n, repeats, torch.get_num_threads())


@cache
def _matmul_peak(n: int, repeats: int, threads: int) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = min(timed(lambda: a @ b, repeats, warmup=2))
    return 2 * n**3 / best / 1e9


def timed(fn: Callable[[], Any], iterations: int, warmup: int) -> list[float]:
    """Wall-clock seconds of ``iterations`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    seconds = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t0)
    return seconds


def batched(args: tuple[Any, ...], batch_size: int) -> tuple[Any, ...]:
    """One image's model arguments repeated into a batch."""
    import torch

    if len(args) == 1 and isinstance(args[0], list):  # detectors: a list of images
        return (args[0] * batch_size,)
    return tuple(torch.cat([a] * batch_size) for a in args)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (``getrusage``), in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1e3  # bytes on macOS, KiB else


def python_peak_mb(fn: Callable[[], Any]) -> float:
    """Peak Python/numpy allocations during ``fn()`` (tracemalloc; torch/onnxruntime unseen)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def _stats(prefix: str, seconds: list[float], batch_size: int) -> dict[str, float]:
    median = float(np.median(seconds))
    return {
        f"{prefix}latency_ms_median": median * 1e3,
        f"{prefix}latency_ms_p95": float(np.percentile(seconds, 95)) * 1e3,
        f"{prefix}images_per_s": batch_size / median,
    }


def time_forward(
    module: Any, args: tuple[Any, ...], iterations: int, warmup: int, batch_size: int = 1
) -> dict[str, float]:
    """Latency and images/s of ``module(*args)`` (``args`` holding ``batch_size`` images)."""
    import torch

    def forward() -> Any:
        with torch.no_grad():
            return module(*args)

    return _stats("forward_", timed(forward, iterations, warmup), batch_size)


def run_benchmark(
    registry: Any,
    task: Any,
    model: Any,
    batch_size: int,
    size: int,
    iterations: int,
    warmup: int,
    flops_module: Any = None,
) -> dict[str, Any]:
    """Time ``predict`` and the raw forward of ``model`` (a ``LoadedModel``, any backend).

    ``flops_module``: a torch module of the same architecture to count FLOPs
    with (default: the model itself when it is a torch model; none: no count).
    """
    import torch

    from eyescan.deploy.onnx_export import predict_recorded

    item = task.example_input(size)
    batch = [item] * batch_size
    _, calls = predict_recorded(registry, task, model, [item])
    args = batched(calls[0], batch_size)

    def predict() -> Any:
        return registry.hook.predict(task=task, model=model, batch=batch)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result: dict[str, Any] = {
        "schema": BENCHMARK_SCHEMA,
        "task": task.name,
        "model": model.name,
        "backend": getattr(model, "backend", "torch"),
        "quantized": model.card.get("quantized", False),
        "batch_size": batch_size,
        "size": size,
        "model_input": [list(t.shape) for t in _tensors(calls[0])],
        "model_calls_per_image": len(calls),
        "iterations": iterations,
        "warmup": warmup,
        **_stats("", timed(predict, iterations, warmup), batch_size),
        **time_forward(model.module, args, iterations, warmup, batch_size),
    }
    if flops_module is None and result["backend"] == "torch":
        flops_module = model.module
    gflops = count_flops(flops_module, *calls[0]) / 1e9 if flops_module is not None else None
    peak = matmul_peak_gflops()
    achieved = gflops * result["forward_images_per_s"] if gflops is not None else None
    result.update(
        {
            "gflops_per_image": gflops,
            "achieved_gflop_s": achieved,
            "matmul_peak_gflop_s": peak,
            "peak_fraction": achieved / peak if achieved is not None else None,
            "peak_rss_mb": peak_rss_mb(),
            "python_peak_mb": python_peak_mb(predict),
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "load_average_1m": load,
            "machine": platform.processor() or platform.machine(),
        }
    )
    return result


def _tensors(args: tuple[Any, ...]) -> list[Any]:
    from eyescan.deploy.onnx_backend import flatten

    return flatten(args)[1]
