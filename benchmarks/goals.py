"""Measure the performance goals of issue 24 in one run, each as a ratio, and write them
into docs/performance.md and the README.

    python benchmarks/goals.py --out runs/goals --doc docs/performance.md --readme README.md

About 5-10 minutes on the 2-core project machine. Every measurement is a child
``eyescan`` process (as a user runs it); peak memory is the child's peak RSS (wait4).

1. ``eyescan predict TASK`` on a folder of ``--images`` DRIVE-size (565×584) JPEG
   photographs against the raw model throughput ``eyescan benchmark`` reports for the
   same backend, batch size and size (``--size`` 576: the network's 592×576 input, a
   little smaller, so the ratio is conservative): vessels on torch and onnx, drgrade.
2. An 8-MP photograph (HRF size, 3504×2336): seconds per photo end to end (decode to
   files written; the summary line of ``predict`` over ``--hr-copies`` copies, model
   loading excluded), vessels with onnx (goal ≤ 3 s) and drgrade (goal ≤ 1 s).
3. Peak memory on the 8-MP photo (goal ≤ 2 GB) and on a photo at the input limit
   (``eyescan.imaging.imageio.max_pixels()``, 80 MP by default; goal ≤ 4 GB). A limit above
   ``--max-megapixels`` is not decoded here: the largest photo measured is that size
   and the limit's figure is extrapolated from the MB per megapixel between the two
   sizes (said so in the table).
4. ``eyescan --help`` and ``eyescan tasks``: median wall time of ``--repeats`` runs
   (goal for ``--help``: ≤ 0.25 s).

Inputs are made under ``--out`` from a bundled CC0 example (examples/), never kept in the
repository. The load average is recorded before and after: every number depends on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "haggstrom_fundus_left_584.jpg"
EYESCAN = [sys.executable, "-m", "eyescan"]
DRIVE_SIZE = (565, 584)  # width, height
HRF_SIZE = (3504, 2336)
START, END = "<!-- goals:start -->", "<!-- goals:end -->"
GOALS = {"ratio": 0.80, "hr_vessels_s": 3.0, "hr_drgrade_s": 1.0, "hr_mb": 2000, "limit_mb": 4000}
#: (task, backend, model): the end-to-end runs; drgrade's screen model (grader and
#: detector in one file) has no single ONNX graph, so drgrade runs on torch only.
RUNS = [("vessels", "torch"), ("vessels", "onnx"), ("drgrade", "torch")]


def photo(path: Path, size: tuple[int, int]) -> Path:
    """The bundled example resized to ``size`` (width, height), JPEG quality 95."""
    import cv2

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        image = cv2.imread(str(EXAMPLE), cv2.IMREAD_COLOR)
        shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
        method = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        cv2.imwrite(str(path), cv2.resize(image, size, interpolation=method),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])  # fmt: skip
    return path


def folder(root: Path, source: Path, count: int) -> Path:
    """``count`` hard links of one photo (decoding cost is real, disk space is not)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        target = root / f"img_{i:04d}{source.suffix}"
        if not target.exists():
            os.link(source, target)
    return root


def run_peak(args: list[str]) -> dict[str, Any]:
    """A child's stderr, wall time and its own peak RSS in MB (wait4)."""
    started = time.perf_counter()
    with open(os.devnull, "w") as devnull:
        proc = subprocess.Popen(args, stdout=devnull, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, args))} failed: {err[-1500:]}")
    seconds = time.perf_counter() - started
    return {"stderr": err, "seconds": seconds, "peak_mb": usage.ru_maxrss / 1e3}


def summary_seconds(stderr: str) -> tuple[int, float]:
    """Images done and seconds from predict's summary line ('N/M images in S s')."""
    match = re.search(r"(\d+)/(\d+) images in ([\d.]+) s", " ".join(stderr.split()))
    if not match:
        raise RuntimeError(f"no summary line in predict's stderr: {stderr[-500:]}")
    return int(match.group(1)), float(match.group(3))


def stage_means(records: Path) -> dict[str, float]:
    """Mean per-image milliseconds of each pipeline stage, from predictions.jsonl."""
    totals: dict[str, list[float]] = {}
    for line in records.read_text().splitlines():
        for stage, ms in json.loads(line).get("timings_ms", {}).items():
            totals.setdefault(stage, []).append(ms)
    return {stage: round(sum(v) / len(v), 1) for stage, v in totals.items()}


def median_wall(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(args, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def raw_rate(task: str, backend: str, size: int, batch: int, iterations: int) -> dict[str, Any]:
    """``eyescan benchmark``'s raw forward images/s (and its predict-hook rate)."""
    out = subprocess.run(
        [*EYESCAN, "benchmark", task, "--backend", backend, "--size", str(size), "--batch-size",
         str(batch), "--iterations", str(iterations), "--warmup", "2", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = json.loads(out.splitlines()[-1])
    return {
        "forward_images_per_s": found["forward_images_per_s"],
        "predict_hook_images_per_s": found["images_per_s"],
        "model_input": found.get("model_input"),
        "threads": found.get("threads"),
    }


def predict(task: str, inputs: Path, out: Path, backend: str, batch: int) -> dict[str, Any]:
    """``eyescan predict`` on a folder: images/s of the pipeline (model loading excluded),
    seconds per photo, stage means, peak RSS."""
    result = run_peak(
        [*EYESCAN, "predict", task, str(inputs), "--backend", backend, "--out", str(out),
         "--batch-size", str(batch)]
    )  # fmt: skip
    images, seconds = summary_seconds(result["stderr"])
    return {
        "images": images,
        "pipeline_seconds": seconds,
        "images_per_s": images / seconds,
        "seconds_per_image": seconds / images,
        "process_seconds": result["seconds"],
        "peak_mb": result["peak_mb"],
        "stage_ms_mean": stage_means(out / "predictions.jsonl"),
    }


def end_to_end(options: argparse.Namespace, inputs: Path) -> list[dict[str, Any]]:
    rows = []
    for task, backend in RUNS:
        if task not in options.tasks or backend not in options.backends:
            continue
        raw = raw_rate(task, backend, options.size, options.batch_size, options.iterations)
        run = predict(task, inputs, options.out / f"e2e-{task}-{backend}", backend,
                      options.batch_size)  # fmt: skip
        row = {"task": task, "backend": backend, "batch_size": options.batch_size, **raw, **run}
        row["ratio"] = run["images_per_s"] / raw["forward_images_per_s"]
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def high_resolution(options: argparse.Namespace) -> list[dict[str, Any]]:
    """Seconds per 8-MP photo and peak memory, per task (vessels on onnx, drgrade)."""
    source = photo(options.out / "inputs" / "hrf_size.jpg", HRF_SIZE)
    inputs = folder(options.out / "inputs" / "hr", source, options.hr_copies)
    rows = []
    for task, backend in [("vessels", "onnx"), ("vessels", "torch"), ("drgrade", "torch")]:
        if task not in options.tasks or backend not in options.backends:
            continue
        run = predict(task, inputs, options.out / f"hr-{task}-{backend}", backend, 1)
        rows.append({"task": task, "backend": backend, "megapixels": 8.19, **run})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def input_limit_memory(options: argparse.Namespace, hr: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak memory on the largest photo measured (the input limit, or ``--max-megapixels``)
    and MB per megapixel between it and the 8-MP photo, per task."""
    from eyescan.imaging import imageio

    limit = imageio.max_pixels() if hasattr(imageio, "max_pixels") else imageio.MAX_PIXELS
    limit_mp = limit / 1e6
    mp = min(limit_mp, options.max_megapixels)
    side = int((mp * 1e6 * 1.5) ** 0.5)  # 3:2, as HRF
    size = (side, int(mp * 1e6 / side))
    source = photo(options.out / "inputs" / f"big_{size[0]}x{size[1]}.jpg", size)
    inputs = folder(options.out / "inputs" / "big", source, 1)
    found: dict[str, Any] = {
        "limit_megapixels": limit_mp,
        "measured_megapixels": size[0] * size[1] / 1e6,
        "size": list(size),
        "tasks": [],
    }
    for row in hr:
        run = predict(row["task"], inputs, options.out / f"big-{row['task']}-{row['backend']}",
                      row["backend"], 1)  # fmt: skip
        per_mp = (run["peak_mb"] - row["peak_mb"]) / (found["measured_megapixels"] - 8.19)
        at_limit = run["peak_mb"] + per_mp * (limit_mp - found["measured_megapixels"])
        found["tasks"].append(
            {
                "task": row["task"],
                "backend": row["backend"],
                "peak_mb": run["peak_mb"],
                "seconds_per_image": run["seconds_per_image"],
                "mb_per_megapixel": per_mp,
                "peak_mb_at_limit": at_limit,
                "extrapolated": mp < limit_mp,
            }
        )
        print(json.dumps(found["tasks"][-1]), file=sys.stderr, flush=True)
    return found


def measure(options: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(["python", "benchmarks/goals.py", *sys.argv[1:]]),
    }
    skip = set(filter(None, options.skip.split(",")))
    if "help" not in skip:
        report["help_seconds"] = median_wall(["eyescan", "--help"], options.repeats)
        report["tasks_seconds"] = median_wall(["eyescan", "tasks"], max(3, options.repeats // 2))
        # the interpreter's own start, as a yardstick of the machine's load
        report["python_seconds"] = median_wall([sys.executable, "-c", "pass"], options.repeats)
    if "e2e" not in skip:
        drive = photo(options.out / "inputs" / "drive_size.jpg", DRIVE_SIZE)
        inputs = folder(options.out / "inputs" / f"drive{options.images}", drive, options.images)
        report["end_to_end"] = end_to_end(options, inputs)
    if "highres" not in skip:
        report["high_resolution"] = high_resolution(options)
        if "memory" not in skip and report["high_resolution"]:
            report["input_limit"] = input_limit_memory(options, report["high_resolution"])
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return report


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**not met**")


def goal_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(goal, measured, met?) rows of the goals table."""
    rows = []
    for r in report.get("end_to_end", []):
        rows.append(
            (
                f"`predict {r['task']}` on {r['images']} DRIVE-size photos, {r['backend']}, "
                f"batch {r['batch_size']}: ≥ 80 % of the raw model throughput",
                f"{r['images_per_s']:.2f} / {r['forward_images_per_s']:.2f} img/s = "
                f"**{100 * r['ratio']:.0f} %**",
                verdict(r["ratio"] >= GOALS["ratio"]),
            )
        )
    if any(r["task"] == "drgrade" for r in report.get("end_to_end", [])):
        rows.append(("the same for drgrade on onnx", "screen (grader + detector in one file) "
                     "has no single ONNX graph", "n/a"))  # fmt: skip
    for r in report.get("high_resolution", []):
        goal = GOALS["hr_vessels_s"] if r["task"] == "vessels" else GOALS["hr_drgrade_s"]
        counted = r["task"] == "drgrade" or r["backend"] == "onnx"
        rows.append(
            (
                f"8-MP photo (3504×2336), `{r['task']}` {r['backend']}: "
                + (f"≤ {goal:g} s end to end" if counted else "(for comparison)"),
                f"**{r['seconds_per_image']:.2f} s** a photo ({r['images']} photos in "
                f"{r['pipeline_seconds']:.1f} s; the process with start-up and model loading "
                f"{r['process_seconds']:.1f} s)",
                verdict(r["seconds_per_image"] <= goal) if counted else "",
            )
        )
        rows.append(
            (
                f"peak memory on the 8-MP photo, `{r['task']}` {r['backend']}: ≤ 2 GB",
                f"**{r['peak_mb']:.0f} MB**",
                verdict(r["peak_mb"] <= GOALS["hr_mb"]),
            )
        )
    limit = report.get("input_limit")
    for r in (limit or {}).get("tasks", []):
        how = (
            f"extrapolated from {limit['measured_megapixels']:.0f} MP ({r['peak_mb']:.0f} MB) "
            if r["extrapolated"]
            else ""
        )
        rows.append(
            (
                f"peak memory at the input limit ({limit['limit_megapixels']:.0f} MP), "
                f"`{r['task']}` {r['backend']}: ≤ 4 GB",
                f"**{r['peak_mb_at_limit']:.0f} MB** {how}({r['mb_per_megapixel']:.1f} MB per "
                "megapixel above 8 MP)",
                verdict(r["peak_mb_at_limit"] <= GOALS["limit_mb"]),
            )
        )
    if "help_seconds" in report:
        rows.append(
            (
                "`eyescan --help`: median ≤ 0.25 s",
                f"**{report['help_seconds']:.3f} s** (`eyescan tasks`: "
                f"{report['tasks_seconds']:.3f} s; `python -c pass`: "
                f"{report.get('python_seconds', float('nan')):.3f} s)",
                verdict(report["help_seconds"] <= 0.25),
            )
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    """The goals section of docs/performance.md (between the markers)."""
    lines = [
        START,
        f"Measured {report['date']} on {report['cpus']} CPUs ({report['machine']}), load "
        f"average {report['load_average_start'][0]:.2f} at the start and "
        f"{report['load_average_end'][0]:.2f} at the end, by:",
        "",
        "```bash",
        report["command"],
        "```",
        "",
        "| goal | measured | met? |",
        "| --- | --- | --- |",
        *(f"| {g} | {m} | {v} |" for g, m, v in goal_rows(report)),
        "",
    ]
    stages = [r for r in report.get("end_to_end", []) + report.get("high_resolution", [])]
    if stages:
        lines += [
            "Mean milliseconds per image in each stage of those runs (wall time in the "
            "pipeline's threads, which share the cores):",
            "",
            "| run | read | preprocess | predict | report | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in stages:
            name = f"{r['task']} {r['backend']}" + (" 8 MP" if "megapixels" in r else "")
            s = r["stage_ms_mean"]
            lines.append(
                f"| {name} | {s.get('read', 0):.0f} | {s.get('preprocess', 0):.0f} | "
                f"{s.get('predict', 0):.0f} | {s.get('report', 0):.0f} | {r['peak_mb']:.0f} MB |"
            )
        lines.append("")
    limit = report.get("input_limit")
    if limit:
        lines += [
            f"Peak memory per task (child's peak RSS; model and libraries included) on the "
            f"8-MP photo and on a {limit['measured_megapixels']:.0f}-MP photo "
            f"({limit['size'][0]}×{limit['size'][1]}), for choosing the input limit:",
            "",
            "| task | backend | 8 MP | "
            f"{limit['measured_megapixels']:.0f} MP | MB per megapixel | seconds at "
            f"{limit['measured_megapixels']:.0f} MP |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        hr = {(r["task"], r["backend"]): r for r in report.get("high_resolution", [])}
        for r in limit["tasks"]:
            small = hr[(r["task"], r["backend"])]
            lines.append(
                f"| {r['task']} | {r['backend']} | {small['peak_mb']:.0f} MB | "
                f"{r['peak_mb']:.0f} MB | {r['mb_per_megapixel']:.1f} | "
                f"{r['seconds_per_image']:.1f} |"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def replace_section(path: Path, section: str) -> None:
    """Put ``section`` between the goal markers of ``path`` (appended when it has none)."""
    text = path.read_text(encoding="utf-8")
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def readme_table(report: dict[str, Any]) -> str:
    """The README's short goals table (between the markers)."""
    lines = [START, "| goal | measured | met? |", "| --- | --- | --- |"]
    lines += [f"| {g} | {m} | {v} |" for g, m, v in goal_rows(report)]
    lines += ["", f"(measured {report['date']}, load average {report['load_average_start'][0]:.1f}"
              f"; `python benchmarks/goals.py`, see docs/performance.md)", END]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/goals"))
    parser.add_argument("--doc", type=Path, help="write the goals section into this file")
    parser.add_argument("--readme", type=Path, help="write the short goals table into this file")
    parser.add_argument("--images", type=int, default=40, help="DRIVE-size photos per run")
    parser.add_argument("--size", type=int, default=576)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--hr-copies", type=int, default=3)
    parser.add_argument("--max-megapixels", type=float, default=100.0)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--tasks", default="vessels,drgrade")
    parser.add_argument("--backends", default="torch,onnx")
    parser.add_argument("--skip", default="", help="comma list of: help,e2e,highres,memory")
    parser.add_argument("--json", action="store_true", help="print the report as one line")
    parser.add_argument(
        "--from-json", type=Path, help="measure nothing: write the docs from this goals.json"
    )
    options = parser.parse_args(argv)
    options.tasks = options.tasks.split(",")
    options.backends = options.backends.split(",")
    options.out.mkdir(parents=True, exist_ok=True)
    if options.from_json:
        report = json.loads(options.from_json.read_text())
    else:
        report = measure(options)
        (options.out / "goals.json").write_text(json.dumps(report, indent=2) + "\n")
    section = markdown(report)
    (options.out / "goals.md").write_text(section + "\n")
    if options.doc:
        replace_section(options.doc, section)
    if options.readme:
        replace_section(options.readme, readme_table(report))
    print(json.dumps(report, indent=None if options.json else 2))
    return report


if __name__ == "__main__":
    main()
