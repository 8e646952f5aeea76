"""Write one grading manifest of IDRiD part B and APTOS 2019 (or EyePACS), for training on both.

    python plugins/drgrade/scripts/grading_manifest.py \
        "../shared/data/IDRiD/B. Disease Grading" ../shared/data/APTOS2019 \
        runs/grader-idrid-aptos/manifest.csv

Columns: id, image (absolute path: nothing is copied), grade, dme (empty where
the data set has none: APTOS), split, patient, source. Splits: IDRiD training
images train, IDRiD testing images test, APTOS none, so the core's hold-out
keeps 20 % of the APTOS images out of training for ``eyescan evaluate`` (the
same images as on the APTOS folder itself) and validation comes out of the
rest. Byte-identical copies are handled by the readers (IDRiD train 118 = test
064: the training copy is left out, printed here; copies within a split are
kept as one patient and counted).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from eyescan.api import DataError
from eyescan_drgrade.manifest import manifest_samples, write_manifest


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    idrid, kaggle, out = (Path(a) for a in argv)
    try:
        samples = manifest_samples(idrid, kaggle)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_manifest(samples, out)
    counts = Counter((s.source, s.split or "none") for s in samples)
    print(f"{out}: {len(samples)} images {dict(sorted(counts.items()))}", file=sys.stderr)
    notes = sorted({n for s in samples for n in s.notes})
    differ = sum("labels differ" in n for n in notes)
    print(
        f"{len(notes)} sets of byte-identical images ({differ} with different labels); "
        "copies in one split kept as one patient, listed in the cards of models trained on it",
        file=sys.stderr,
    )
    for note in (n for n in notes if "dropped" in n):
        print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
