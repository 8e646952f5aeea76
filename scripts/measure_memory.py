"""Peak memory of ``eyescan predict`` per megapixel of photo, per task: the figures
behind the default pixel limit (``eyescan.imaging.imageio.MAX_PIXELS``).

For each task, ``eyescan predict TASK PHOTO`` runs as a child process on a synthetic
fundus photograph of each size given (``--sizes``, in megapixels); the child's own
peak resident memory is its ``VmHWM`` at exit (``eyescan.testing.eyescan_peak_memory``).
The slope between the smallest and the largest photo is the memory per pixel
(what the model and the interpreter take whatever the photo is cancels out). With
``--folder N``, the task measured hungriest also runs on a folder of N photos of the
largest size (default ``--workers``): the pipeline's decoding and preprocessing
threads hold several photos at once, and the pixel limit must leave room for them.

    python scripts/measure_memory.py --sizes 1 16 --folder 4 --out runs/memory.json
    python scripts/measure_memory.py --tasks vessels,drgrade,redlesion,rop,strabismus \
        --out runs/memory-all.json
    python scripts/measure_memory.py --table runs/memory.json runs/memory-all.json --write

The shipped weights run (memory does not depend on them). Prints what it measures and
writes JSON; ``--table`` turns saved JSON files into the Markdown table that
``--write`` puts between the ``memory-table`` markers of docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

TASKS = ["vessels", "drgrade", "redlesion", "rop", "strabismus"]
DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
BEGIN = "<!-- memory-table: begin (python scripts/measure_memory.py --table ... --write) -->"
END = "<!-- memory-table: end -->"


def photo(path: Path, megapixels: float) -> Path:
    """A synthetic fundus photograph of about ``megapixels`` (JPEG, square)."""
    from PIL import Image

    from eyescan.data.synthetic import make_fundus

    side = max(64, round((megapixels * 1e6) ** 0.5))
    small = Image.fromarray(make_fundus(512, seed=3).image)
    small.resize((side, side), Image.BICUBIC).save(path, quality=92)
    return path


def peak_rss(args: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    """``(peak RSS in bytes, seconds, exit code)`` of ``eyescan ARGS`` as a child process."""
    from eyescan.testing import eyescan_peak_memory

    started = time.perf_counter()
    peak, code, _ = eyescan_peak_memory(*args, env=env)
    return peak, time.perf_counter() - started, code


def table(files: list[Path]) -> str:
    """The Markdown table of saved measurements (one row per task or run, then the folder)."""
    rows = [
        "| run | peak, smallest photo | peak, largest photo | bytes per pixel |",
        "| --- | ---: | ---: | ---: |",
    ]
    notes = []
    for path in files:
        found = json.loads(Path(path).read_text(encoding="utf-8"))
        sizes = [f"{s:g}" for s in found["sizes_mpx"]]
        for task, one in found["tasks"].items():
            low, high = one["runs"][sizes[0]], one["runs"][sizes[-1]]
            rows.append(
                f"| `predict {task}` | {low['peak_bytes'] / 2**30:.2f} GiB ({sizes[0]} Mpx) | "
                f"{high['peak_bytes'] / 2**30:.2f} GiB ({sizes[-1]} Mpx) | "
                f"{one['bytes_per_pixel']:.1f} |"
            )
        folder = found.get("folder")
        if folder:
            notes.append(
                f"`predict {folder['task']}` on a folder of {folder['photos']} photos of "
                f"{folder['megapixels']:g} Mpx (`--workers {folder['workers']}`): peak "
                f"{folder['peak_bytes'] / 2**30:.2f} GiB, {folder['photos_in_memory']:.2f} "
                "photos' worth of memory at once."
            )
    return "\n".join(rows) + "\n" + "".join(f"\n{n}\n" for n in notes)


def write_doc(text: str) -> None:
    """Put ``text`` between the memory-table markers of docs/reliability.md."""
    from eyescan.testing import load_script

    tables = load_script(Path(__file__).with_name("reliability_table.py"))
    tables.write_doc(text, DOC, BEGIN, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--sizes", nargs="+", type=float, default=[1.0, 16.0])
    parser.add_argument("--folder", type=int, default=0, help="photos in the folder run")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="JSON file to write")
    parser.add_argument("--table", nargs="+", type=Path, help="saved JSON files: print a table")
    parser.add_argument("--write", action="store_true", help=f"put the table in {DOC.name}")
    args = parser.parse_args()
    if args.table:
        text = table(args.table)
        print(text, end="")
        if args.write:
            write_doc(text)
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EYESCAN_MAX_PIXELS": str(10**10)}
    sizes = sorted(args.sizes)
    results: dict[str, object] = {"sizes_mpx": sizes, "tasks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = {size: photo(root / f"photo_{size:g}mpx.jpg", size) for size in sizes}
        pixels = {}
        for size, path in photos.items():
            from PIL import Image

            with Image.open(path) as opened:
                pixels[size] = opened.width * opened.height
        for task in args.tasks:
            peaks = {}
            for size in sizes:
                out = root / f"out-{task}-{size:g}"
                rss, seconds, code = peak_rss(
                    ["predict", task, str(photos[size]), "--out", str(out)], env
                )
                peaks[size] = {"peak_bytes": rss, "seconds": round(seconds, 1), "exit": code}
                print(f"{task:>10} {size:>6g} Mpx: peak {rss / 2**30:6.2f} GiB, {seconds:5.1f} s")
            low, high = sizes[0], sizes[-1]
            slope = (peaks[high]["peak_bytes"] - peaks[low]["peak_bytes"]) / (
                pixels[high] - pixels[low]
            )
            results["tasks"][task] = {
                "runs": {f"{s:g}": peaks[s] for s in sizes},
                "bytes_per_pixel": round(slope, 1),
                "base_bytes": round(peaks[low]["peak_bytes"] - slope * pixels[low]),
            }
            print(f"{task:>10}: {slope:.1f} bytes per pixel")
        if args.folder:
            hungriest = max(results["tasks"], key=lambda t: results["tasks"][t]["bytes_per_pixel"])
            folder = root / "folder"
            folder.mkdir()
            for i in range(args.folder):
                os.link(photos[sizes[-1]], folder / f"photo{i}.jpg")
            rss, seconds, code = peak_rss(
                [
                    "predict",
                    hungriest,
                    str(folder),
                    "--out",
                    str(root / "out-folder"),
                    "--workers",
                    str(args.workers),
                ],
                env,
            )
            one = results["tasks"][hungriest]
            per_photo = one["bytes_per_pixel"] * pixels[sizes[-1]]
            in_flight = (rss - one["base_bytes"]) / per_photo
            results["folder"] = {
                "task": hungriest,
                "photos": args.folder,
                "megapixels": sizes[-1],
                "workers": args.workers,
                "peak_bytes": rss,
                "seconds": round(seconds, 1),
                "photos_in_memory": round(in_flight, 2),
            }
            print(
                f"{hungriest} folder of {args.folder} x {sizes[-1]:g} Mpx (workers "
                f"{args.workers}): peak {rss / 2**30:.2f} GiB = {in_flight:.2f} photos' worth"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
