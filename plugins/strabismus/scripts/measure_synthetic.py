"""Reproduce the strabismus plugin's synthetic-data table (README) from scratch.

Generates the synthetic Hirschberg data set, trains the eye-region detector and
both classifiers through the CLI (``eyescan train strabismus``), names the
detector (path and SHA-256) in each classifier's card, evaluates them on the
held-out synthetic test split
(``eyescan evaluate strabismus``, with 95 % bootstrap intervals), and
measures parameters, FLOPs and CPU milliseconds per image. Writes
``OUT/results.json`` and prints the tables as Markdown.

    nice -n 10 python plugins/strabismus/scripts/measure_synthetic.py --out runs/strabismus

Each training runs in its own process with one torch thread (``--threads``):
on the shared 2-core machine two OpenMP threads per process spent ~6× the CPU
time per batch spinning. ``--ship`` copies the trained detector and Lite
classifier into the plugin's ``weights/`` folder. Synthetic data only: no
clinical claim rests on these numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]
RECIPES = PLUGIN / "eyescan_strabismus" / "recipes"
MODELS = {
    "eye-detector": "eye-detector-synthetic.json",
    "rfcnn-lite": "rfcnn-lite-synthetic.json",
    "rfcnn-cnn": "rfcnn-cnn-synthetic.json",
}


def start_cli(*args: str, threads: int, log: Path | None = None) -> subprocess.Popen:
    """Start ``eyescan ARGS --json`` (stdout: JSON lines; stderr: progress, to ``log``)."""
    command = [sys.executable, "-m", "eyescan", *args, "--json"]
    print("$ eyescan " + " ".join(args) + " --json", file=sys.stderr, flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    stderr = open(log, "w") if log else None  # noqa: SIM115 (closed with the process)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def lines_of(process: subprocess.Popen) -> list[dict]:
    out, _ = process.communicate()
    if process.returncode:
        raise SystemExit(f"command failed ({process.returncode}): {' '.join(process.args)}")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def cpu_ms(module, x, repeats: int = 20) -> float:
    """Median milliseconds of one forward pass (batch 1, no gradients)."""
    import torch

    module.eval()
    times = []
    with torch.no_grad():
        for _ in range(3):
            module(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return sorted(times)[len(times) // 2]


def model_costs(name: str, weights: Path, input_size: int) -> dict:
    """Parameters, weight-file size, FLOPs and CPU ms/image of a trained model."""
    import torch

    from eyescan.api import cost, get_registry, models
    from eyescan_strabismus.models import parameter_megabytes

    loaded = models.load(get_registry(), "strabismus", name, weights)
    module = loaded.module
    if name == "eye-detector":
        x: object = [torch.rand(3, 224, 224)]
        sizes = {"flops_256": cost.count_flops(module, [torch.zeros(3, 256, 256)])}
    else:
        x = torch.rand(1, 3, input_size, input_size)
        sizes = {
            "flops_224": cost.count_flops(module, torch.zeros(1, 3, 224, 224)),
            f"flops_{input_size}": cost.count_flops(
                module, torch.zeros(1, 3, input_size, input_size)
            ),
        }
    return {
        "parameters": cost.count_parameters(module),
        "param_mb": round(parameter_megabytes(module), 2),
        "file_mb": round(weights.stat().st_size / 1e6, 2),
        **sizes,
        "cpu_ms_per_image": round(cpu_ms(module, x), 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/strabismus"))
    parser.add_argument("--train", type=int, default=1600)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--no-face-fraction", type=float, default=0.05)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--ship", action="store_true", help="copy detector + Lite into weights/")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    from eyescan_strabismus.synthetic import write_dataset

    data = args.out / "data"
    if not (data / "test").is_dir():
        started = time.perf_counter()
        write_dataset(
            data, args.train, args.test, args.size, seed=0, no_face_fraction=args.no_face_fraction
        )
        print(f"generated {data} in {time.perf_counter() - started:.0f} s", file=sys.stderr)

    results: dict = {"data": str(data), "train": args.train, "test": args.test, "size": args.size}
    started = time.perf_counter()
    processes = {}
    for name in args.models:  # the trainings run side by side (one thread each)
        run = args.out / name
        run.mkdir(parents=True, exist_ok=True)
        processes[name] = start_cli(
            "train",
            "strabismus",
            str(data),
            "--model",
            name,
            "--config",
            str(RECIPES / MODELS[name]),
            "--out",
            str(run),
            "--resume",  # a rerun continues interrupted trainings
            threads=args.threads,
            log=run / "train.log",
        )
    weights: dict[str, Path] = {}
    for name, process in processes.items():
        (summary,) = lines_of(process)
        weights[name] = Path(summary["weights"])
        history = [json.loads(x) for x in (weights[name].parent / "metrics.jsonl").open()]
        results[name] = {
            "train": summary,
            "train_minutes_wall": round((time.perf_counter() - started) / 60, 1),
            "train_minutes_epochs": round(sum(h["seconds"] for h in history) / 60, 1),
        }
    from eyescan_strabismus.pipeline import link_detector

    detector = weights.get("eye-detector") or args.out / "eye-detector" / "eye-detector.safetensors"
    for name in args.models:
        if name != "eye-detector" and detector.exists():  # the pipeline's detector, by hash
            link_detector(weights[name], detector)
        lines = lines_of(
            start_cli(
                "evaluate",
                "strabismus",
                str(data),
                "--model",
                name,
                "--weights",
                str(weights[name]),
                threads=args.threads,
            )
        )
        results[name]["test"] = lines[-1]
        card = json.loads(weights[name].with_suffix(".json").read_text())
        results[name]["costs"] = model_costs(name, weights[name], int(card.get("input_size", 224)))
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))
    if args.ship:
        target = PLUGIN / "eyescan_strabismus" / "weights"
        for name in ("eye-detector", "rfcnn-lite"):
            ship(weights[name], target / f"{name}.safetensors")


def ship(source: Path, target: Path) -> None:
    """Copy weights and card into the plugin; the card says ``synthetic_only`` (predict warns).

    A classifier's detector link then names the shipped detector file (same SHA-256).
    """
    shutil.copy(source, target)
    card = json.loads(source.with_suffix(".json").read_text())
    card.update(synthetic_only=True, note="synthetic-data demo weights; not for clinical use")
    if isinstance(card.get("detector"), dict):
        card["detector"] = {**card["detector"], "file": "eye-detector.safetensors"}
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def markdown(results: dict) -> str:
    lines = []
    if "eye-detector" in results:
        d = results["eye-detector"]
        t, c = d["test"], d["costs"]
        lines += [
            "| detector | AP@0.5 | best box IoU≥0.5 | mean IoU | false regions (no-face images) "
            "| params | weights | GFLOPs (256²) | CPU ms/img |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| Faster R-CNN + inverted residual | {100 * t['ap50']:.2f} % "
            f"| {100 * t['best_box_found_iou50']:.1f} % | {t['mean_best_iou']:.3f} "
            f"| {t['false_regions_on_images_without_eyes']} of "
            f"{t['images'] - t['images_with_eye_region']} | {c['parameters'] / 1e6:.2f} M "
            f"| {c['file_mb']} MB | {c['flops_256'] / 1e9:.2f} | {c['cpu_ms_per_image']} |",
            "",
        ]
    rows = [n for n in ("rfcnn-cnn", "rfcnn-lite") if n in results]
    if rows:
        lines += [
            "| classifier | params | weights | FLOPs (224²) | FLOPs (trained size) | CPU ms/img "
            "| TP | TN | FP | FN | Se | Sp | Acc | AUC | pipeline Acc | pipeline AUC |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- "
            "| --- | --- |",
        ]
        for name in rows:
            t, c = results[name]["test"], results[name]["costs"]
            trained = next(k for k in c if k.startswith("flops_") and k != "flops_224")
            lines.append(
                f"| {name} | {c['parameters'] / 1e6:.2f} M | {c['file_mb']} MB "
                f"| {c['flops_224'] / 1e6:.0f} M | {c[trained] / 1e6:.0f} M ({trained[6:]}²) "
                f"| {c['cpu_ms_per_image']} | {t['tp']} | {t['tn']} | {t['fp']} | {t['fn']} "
                f"| {t['sensitivity']:.4f} | {t['specificity']:.4f} | {t['accuracy']:.4f} "
                f"| {t['auc']:.4f} | {t.get('pipeline_accuracy', float('nan')):.4f} "
                f"| {t.get('pipeline_auc', float('nan')):.4f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
