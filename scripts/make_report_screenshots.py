"""Screenshots for docs/reports.md: the HTML report of the bundled examples, evaluation plots.

    python scripts/make_report_screenshots.py [--drive PATH] [--work DIR] [--single] [--report-only]

1. ``eyescan predict vessels,drgrade,redlesion examples/ --report`` (the screening
   report) → ``docs/images/report.png``, when the installed eyescan accepts a comma
   list of tasks (found by trying); else ``eyescan predict vessels examples/ --report``.
   ``--single`` forces the single-task run; both say which was used;
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


SCREENING_TASKS = "vessels,drgrade,redlesion"


def eyescan(*args: object, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "eyescan", *map(str, args)]
    print("+ eyescan", " ".join(map(str, args)), file=sys.stderr)
    return subprocess.run(command, check=check, cwd=ROOT)


def report_run(work: Path, single: bool) -> tuple[Path, str]:
    """The predict run behind ``report.png``: the screening run when it works, else vessels."""
    if not single:
        out = work / "screening"
        done = eyescan("predict", SCREENING_TASKS, "examples/", "--out", out,
                       "--report", out / "report.html", check=False)  # fmt: skip
        if done.returncode == 0 and (out / "report.html").is_file():
            return out / "report.html", f"screening run ({SCREENING_TASKS})"
        print(f"this eyescan does not run '{SCREENING_TASKS}' (exit {done.returncode}): "
              "falling back to the single-task run", file=sys.stderr)  # fmt: skip
    out = work / "pred"
    eyescan("predict", "vessels", "examples/", "--out", out, "--report", out / "report.html")
    return out / "report.html", "single-task run (vessels)"


def rendered_dom(page: Path, work: Path) -> str:
    """The page's DOM after its script ran in headless chromium (``data-ready`` is set last)."""
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", f"--user-data-dir={work / 'profile'}", "--dump-dom",
        page.resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
    if 'data-ready="1"' not in done.stdout:
        sys.exit(f"{page}: the report's script did not run to its end in chromium")
    return done.stdout


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
    parser.add_argument("--single", action="store_true", help="Report of the single-task run.")
    parser.add_argument("--report-only", action="store_true", help="Only docs/images/report.png.")
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        sys.exit("chromium not found: apt-get install chromium")
    work = args.work or Path(tempfile.mkdtemp(prefix="eyescan-shots-"))
    IMAGES.mkdir(parents=True, exist_ok=True)

    page, used = report_run(work, args.single)
    dom = rendered_dom(page, work)
    rows = dom.count('<tr class="image-row')
    print(f"report.png from the {used}: {rows} rows rendered, "
          f"{page.stat().st_size // 1024} KB", file=sys.stderr)  # fmt: skip
    screenshot(page, IMAGES / "report.png", work, (1400, 1300))
    if args.report_only:
        print(f"runs kept in {work}", file=sys.stderr)
        return

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
