"""Model speed on this machine: latency percentiles and throughput."""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

from eyescan.records import BENCHMARK_SCHEMA


def run_benchmark(
    registry: Any, task: Any, model: Any, batch_size: int, size: int, iterations: int, warmup: int
) -> dict[str, Any]:
    """Time the task's ``predict`` hook on a batch of preprocessed random images."""
    import torch

    item = task.example_input(size)
    batch = [item] * batch_size
    for _ in range(warmup):
        registry.hook.predict(task=task, model=model, batch=batch)
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        registry.hook.predict(task=task, model=model, batch=batch)
        times.append(time.perf_counter() - t0)
    seconds = np.asarray(times)
    return {
        "schema": BENCHMARK_SCHEMA,
        "task": task.name,
        "model": model.name,
        "backend": "torch",
        "batch_size": batch_size,
        "size": size,
        "iterations": iterations,
        "latency_ms_median": float(np.median(seconds) * 1e3),
        "latency_ms_p95": float(np.percentile(seconds, 95) * 1e3),
        "images_per_s": float(batch_size / np.median(seconds)),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }
