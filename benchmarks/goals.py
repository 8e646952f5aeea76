"""Measure the performance goals of issue 8 in one run, each as a ratio.

    nice -n 10 python benchmarks/goals.py --out /tmp/goals [--json]

1. End-to-end ``eyescan predict`` on a folder of ``--images`` synthetic
   photographs (``--size`` px) against the raw model throughput of the same
   backend (``eyescan benchmark``'s ``forward_images_per_s`` at that size,
   batch 1, which is how the task calls its model).
2. onnxruntime against torch eager: raw forward of every registered model
   at its task's input for a ``--size`` photograph.
3. Peak memory (``getrusage`` of the child) of ``eyescan predict`` on a
   ``--big``-image folder against a ``--images``-image one (``--small-size`` px).
4. ``eyescan --help`` wall time (median of 5 runs).

Synthetic images only (``eyescan.data.synthetic``); the machine load is recorded
before and after, since it changes every number here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

EYESCAN = [sys.executable, "-m", "eyescan"]


def run_child(args: list[str]) -> str:
    """A child's stdout (it must succeed)."""
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {result.stderr[-2000:]}")
    return result.stdout


def child_peak_rss(args: list[str]) -> tuple[str, float, float]:
    """stderr, wall seconds and peak RSS (MB) of a child, read with wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read().decode() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {err[-2000:]}")
    return err, time.perf_counter() - started, usage.ru_maxrss / 1e3


def write_images(folder: Path, count: int, size: int, distinct: int = 50) -> Path:
    """``count`` synthetic photographs; beyond ``distinct`` they are hard links."""
    from eyescan.data.synthetic import write_folder

    folder.mkdir(parents=True, exist_ok=True)
    originals = write_folder(folder / "originals", n=min(count, distinct), size=size, seed=0)
    for i in range(count):
        target = folder / f"img_{i:05d}.png"
        if not target.exists():
            os.link(originals[i % len(originals)], target)
    shutil.rmtree(folder / "originals")
    return folder


def pipeline_rate(stderr: str) -> tuple[int, float]:
    """Images and seconds from predict's summary line ('N/M images in S s')."""
    match = re.search(r"(\d+)/(\d+) images in ([\d.]+) s", " ".join(stderr.split()))
    if not match:
        raise RuntimeError(f"no summary line in predict's stderr: {stderr[-500:]}")
    return int(match.group(1)), float(match.group(3))


def stage_means(records: Path) -> dict[str, float]:
    """Mean per-image milliseconds of each pipeline stage (read, preprocess, predict, report)."""
    totals: dict[str, list[float]] = {}
    for line in records.read_text().splitlines():
        for stage, ms in json.loads(line).get("timings_ms", {}).items():
            totals.setdefault(stage, []).append(ms)
    return {stage: round(sum(v) / len(v), 1) for stage, v in totals.items()}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def help_time() -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(["eyescan", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return sorted(times)[2]


def end_to_end(task: str, folder: Path, out: Path, size: int, backend: str) -> dict[str, Any]:
    bench = run_child(
        [*EYESCAN, "benchmark", task, "--backend", backend, "--size", str(size),
         "--iterations", "10", "--warmup", "2", "--json"]
    )  # fmt: skip
    raw = json.loads(bench.splitlines()[-1])
    err, _, peak = child_peak_rss(
        [*EYESCAN, "predict", task, str(folder), "--backend", backend, "--out", str(out)]
    )
    images, seconds = pipeline_rate(err)
    e2e = images / seconds
    return {
        "stage_ms_mean": stage_means(out / "predictions.jsonl"),
        "backend": backend,
        "raw_forward_images_per_s": raw["forward_images_per_s"],
        "predict_hook_images_per_s": raw["images_per_s"],
        "end_to_end_images_per_s": e2e,
        "ratio": e2e / raw["forward_images_per_s"],
        "images": images,
        "peak_rss_mb": peak,
    }


def backend_ratios(size: int, iterations: int) -> list[dict[str, Any]]:
    """Raw forward images/s of every registered model on both backends (in-process).

    Torch runs with its default threads and with one thread (on a loaded
    machine two OpenMP threads can be much slower than one); onnxruntime with
    one intra-op thread per usable core.
    """
    import torch

    from eyescan.deploy import onnx_backend
    from eyescan.deploy.benchmarking import time_forward
    from eyescan.deploy.onnx_export import predict_recorded
    from eyescan.plugins import registry as plugins

    registry = plugins.get_registry()
    default_threads = torch.get_num_threads()
    results = []
    for task_name, model_name in sorted(registry.models):
        task = registry.task(task_name)
        item = task.example_input(size)
        row: dict[str, Any] = {"task": task_name, "model": model_name}
        try:
            for backend in ("torch", "onnx"):
                loaded = onnx_backend.load_for_backend(
                    registry, task, model_name, None, backend, random_init=True
                )
                _, calls = predict_recorded(registry, task, loaded, [item])
                row["input"] = [list(t.shape) for t in onnx_backend.flatten(calls[0])[1]][:1]
                rate = time_forward(loaded.module, calls[0], iterations, 1)["forward_images_per_s"]
                row[f"{backend}_images_per_s"] = rate
                if backend == "torch":
                    torch.set_num_threads(1)
                    one = time_forward(loaded.module, calls[0], iterations, 1)
                    torch.set_num_threads(default_threads)
                    row["torch_1thread_images_per_s"] = one["forward_images_per_s"]
        except Exception as exc:  # a model the onnx path cannot run yet: say why, go on
            row["skipped"] = f"{type(exc).__name__}: {exc}"
        else:
            row["onnx_over_torch"] = row["onnx_images_per_s"] / row["torch_images_per_s"]
            best = max(row["torch_images_per_s"], row["torch_1thread_images_per_s"])
            row["onnx_over_best_torch"] = row["onnx_images_per_s"] / best
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="vessels")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=288)
    parser.add_argument("--big", type=int, default=10_000)
    parser.add_argument("--small-size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("goals-out"))
    parser.add_argument("--skip", default="", help="comma list of: e2e,backends,memory,help")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    skip = set(filter(None, options.skip.split(",")))
    out: Path = options.out
    report: dict[str, Any] = {"load_average_start": load_average(), "cpus": os.cpu_count()}
    if "help" not in skip:
        report["help_seconds"] = help_time()
    if "e2e" not in skip:
        folder = write_images(out / f"in{options.images}", options.images, options.size)
        report["end_to_end"] = [
            end_to_end(options.task, folder, out / f"pred-{b}", options.size, b)
            for b in ("torch", "onnx")
        ]
        print(json.dumps(report["end_to_end"]), file=sys.stderr, flush=True)
    if "memory" not in skip:
        memory = {}
        for count in (options.images, options.big):
            folder = write_images(out / f"small{count}", count, options.small_size)
            err, seconds, peak = child_peak_rss(
                [*EYESCAN, "predict", options.task, str(folder), "--backend", "onnx",
                 "--out", str(out / f"mem{count}")]
            )  # fmt: skip
            memory[count] = {"peak_rss_mb": peak, "seconds": seconds}
            print(json.dumps({count: memory[count]}), file=sys.stderr, flush=True)
        memory["ratio"] = memory[options.big]["peak_rss_mb"] / memory[options.images]["peak_rss_mb"]
        report["memory"] = memory
    if "backends" not in skip:
        report["backends"] = backend_ratios(options.size, options.iterations)
    report["load_average_end"] = load_average()
    print(json.dumps(report, indent=None if options.json else 2))


if __name__ == "__main__":
    main()
