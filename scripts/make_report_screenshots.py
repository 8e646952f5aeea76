"""Screenshots for docs/reports.md: the HTML report of the bundled examples, evaluation plots.

    python scripts/make_report_screenshots.py [--drive PATH] [--work DIR]

1. ``eyescan predict vessels examples/ --report`` → ``docs/images/report.png``;
2. ``eyescan evaluate vessels DRIVE --plots`` on the DRIVE test split when it is
   present (default ``../shared/data/DRIVE``), else on a tiny synthetic DRIVE
   layout (labelled synthetic) → ``docs/images/evaluation.png``, ``roc.png``, ``pr.png``.

Needs Debian's ``chromium`` for the page screenshots. PNGs are reduced to a
256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"


def eyescan(*args: object) -> None:
    command = [sys.executable, "-m", "eyescan", *map(str, args)]
    print("+ eyescan", " ".join(map(str, args)), file=sys.stderr)
    subprocess.run(command, check=True, cwd=ROOT)


def screenshot(page: Path, png: Path, work: Path, size: tuple[int, int]) -> None:
    """Render ``page`` in headless chromium and save a palette PNG."""
    raw = work / f"{png.stem}-raw.png"
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={work / 'profile'}",
        f"--window-size={size[0]},{size[1]}", f"--screenshot={raw}", page.resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    small(raw, png)


def small(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image.convert("RGB").quantize(256).save(target, optimize=True)
    print(f"wrote {target} ({target.stat().st_size // 1024} KB)", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drive", type=Path, default=ROOT.parent / "shared" / "data" / "DRIVE")
    parser.add_argument("--work", type=Path, default=None, help="Keep the runs in this folder.")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("chromium not found: apt-get install chromium")
    work = args.work or Path(tempfile.mkdtemp(prefix="eyescan-shots-"))
    IMAGES.mkdir(parents=True, exist_ok=True)

    pred = work / "pred"
    eyescan("predict", "vessels", "examples/", "--out", pred, "--report", pred / "report.html")
    screenshot(pred / "report.html", IMAGES / "report.png", work, (1200, 760))

    data = args.drive
    if not (data / "test").is_dir():
        from eyescan.data.synthetic import write_drive_layout

        data = work / "synthetic-drive"
        write_drive_layout(data, n_train=1, n_test=4, size=256, seed=0)
        print("DRIVE not found: evaluating on a SYNTHETIC DRIVE layout", file=sys.stderr)
    plots = work / "plots"
    eyescan("evaluate", "vessels", data, "--plots", plots)
    screenshot(plots / "index.html", IMAGES / "evaluation.png", work, (1200, 1500))
    for name in ("roc", "pr"):
        small(plots / f"{name}.png", IMAGES / f"{name}.png")
    print(f"runs kept in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
