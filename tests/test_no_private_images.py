"""No photograph of a person (or any data-set picture) is in the repository: the only image
files are the redistributable fundus examples (``examples/``, CC0, attributed in its README)
and the documentation figures (``docs/images/``: plots and a report screenshot of those
examples). Checked over the files git tracks, and over the working tree where git is absent."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm"}
#: ``eyescan/data/reference_fundus.jpg``: the CC0 example at 400 px, ``eyescan verify``'s image.
ALLOWED = ("examples/", "docs/images/", "eyescan/data/reference_fundus.jpg")
SKIPPED_DIRS = {".git", ".venv", "runs", "demo-out", "node_modules"}


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=60).stdout  # fmt: skip
        return out.splitlines()
    except (OSError, subprocess.SubprocessError):  # no git: walk the tree
        return [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)
        ]


def test_image_files_only_in_examples_and_docs_images():
    images = [f for f in tracked_files() if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    stray = [f for f in images if not f.startswith(ALLOWED)]
    assert not stray, f"image files outside {ALLOWED}: {stray}"


def test_every_example_image_is_attributed():
    readme = (ROOT / "examples" / "README.md").read_text()
    for image in (ROOT / "examples").iterdir():
        if image.suffix.lower() in IMAGE_SUFFIXES:
            assert image.name in readme, f"{image.name} has no attribution in examples/README.md"
