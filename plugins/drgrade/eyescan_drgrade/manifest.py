"""One grading table for several data sets: written from their readers, read back as one.

:func:`manifest_samples` reads IDRiD part B (official layout) and a Kaggle layout
(APTOS 2019 or EyePACS) with their own readers; :func:`write_manifest` writes them
as a CSV (``MANIFEST_COLUMNS``); :class:`GradingManifestReader` reads it. Ids and
patients are the readers' own, so the core's hold-out of the Kaggle rows (they
have no split) picks the same images as it does on the Kaggle folder itself:
``eyescan evaluate drgrade APTOS_DIR`` scores exactly the APTOS images a model
trained on the manifest never saw.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from eyescan.api import imageio, resolve_duplicates
from eyescan_drgrade.data import DrSample, csv_header, read_grades
from eyescan_drgrade.datasets import IdridGradingReader, KaggleGradingReader

#: Columns of a grading manifest; ``dme`` and ``split`` are empty where unknown / none.
MANIFEST_COLUMNS = ("id", "image", "grade", "dme", "split", "patient", "source")


def dr_label(sample: DrSample) -> str:
    """The labels of a sample as duplicate notes show them: ``grade 2[, DME 1]``."""
    return f"grade {sample.label}" + (f", DME {sample.dme}" if sample.dme is not None else "")


def manifest_samples(idrid: Path, kaggle: Path) -> list[DrSample]:
    """IDRiD part B (its train and test splits) and a Kaggle set (no split), each read
    by its reader, which names it in ``source`` (``idrid``, ``aptos2019``, ``eyepacs``)."""
    return IdridGradingReader().read(idrid) + KaggleGradingReader().read(kaggle)


def write_manifest(samples: list[DrSample], path: Path) -> Path:
    """The samples as a manifest CSV (absolute image paths: nothing is copied)."""
    path = Path(path)
    rows = [
        {
            "id": s.id,
            "image": str(Path(s.image).resolve()),
            "grade": "" if s.label is None else s.label,
            "dme": "" if s.dme is None else s.dme,
            "split": s.split or "",
            "patient": s.patient or "",
            "source": s.source or "",
        }
        for s in samples
    ]
    text = io.StringIO()
    writer = csv.DictWriter(text, MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    imageio.write_text(path, text.getvalue())
    return path


class GradingManifestReader:
    """A grading manifest (``scripts/grading_manifest.py``): ``MANIFEST_COLUMNS``, one image
    a row; ids, splits and patients as written; byte-identical copies (also across the
    data sets) by the core's rule."""

    description = "grading manifest CSV: id,image,grade,dme,split,patient,source"

    def detect(self, path: Path) -> bool:
        path = Path(path)
        return (
            path.suffix.lower() == ".csv"
            and path.is_file()
            and set(MANIFEST_COLUMNS) <= set(csv_header(path))
        )

    def read(self, path: Path, columns: dict[str, str] | None = None) -> list[DrSample]:
        kept, _ = resolve_duplicates(read_grades(Path(path), columns), label=dr_label)
        return kept
