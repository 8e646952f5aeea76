"""A synthetic graded fundus data set with lesion boxes, laid out as real data would be.

Images come from :func:`eyescan.api.synthetic.make_fundus` at the lesion-load
level (``severity``) of the grade asked for; the grade is then given by the
documented rule of :func:`synthetic_grade` from the lesions actually drawn (an
image that does not reach the grade is redrawn with another seed). Boxes are the
8-connected components of the exact microaneurysm, haemorrhage and
hard-exudate masks.
Half the images are 3:2 (the aspect ratio the seed squashed), half square.

Layout (what :class:`eyescan_drgrade.data.VocFolderReader` reads)::

    ROOT/images/drs_0000.png
    ROOT/Annotations/drs_0000.xml     labelImg Pascal VOC XML
    ROOT/ImageSets/Main/train.txt     image ids per split
    ROOT/grades.csv                   image,grade,split
    ROOT/boxes.csv                    image,label,xmin,ymin,xmax,ymax,split
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from eyescan.api import BoxAnnotation, imageio
from eyescan_drgrade.data import write_voc_xml
from eyescan_drgrade.lesions import N_GRADES, boxes_from_mask, grade_from_lesions

MASKS = {
    "microaneurysm": "microaneurysms",
    "haemorrhage": "haemorrhages",
    "hard_exudate": "exudates",
}


#: Haemorrhage blobs from which a synthetic image is severe NPDR (grade 3).
SEVERE_HAEMORRHAGES = 10


def synthetic_grade(counts: dict[str, int]) -> int:
    """The 0-4 grade of a synthetic fundus from its ``lesion_counts`` (a simplification
    of the ICDR scale): 4 neovascular tangles; 3 at least 10 haemorrhage blobs; 2 any
    haemorrhage or hard exudate; 1 microaneurysms only; 0 no lesion.
    Grades 0-3 are the lesion-based rule of :func:`eyescan_drgrade.lesions.grade_from_lesions`.
    """
    if counts.get("neovascular", 0):
        return 4
    return grade_from_lesions(
        {
            "microaneurysm": counts.get("microaneurysms", 0),
            "haemorrhage": counts.get("haemorrhages", 0),
            "hard_exudate": counts.get("exudates", 0),
        },
        SEVERE_HAEMORRHAGES,
    )


def reaches(counts: dict[str, int], grade: int) -> bool:
    """True when the drawn lesions make the image the ``grade`` asked for (grade 4 also
    needs its haemorrhages and exudates, not only new vessels)."""
    complete = grade != 4 or (
        counts.get("haemorrhages", 0) >= SEVERE_HAEMORRHAGES and counts.get("exudates", 0) > 0
    )
    return synthetic_grade(counts) == grade and complete


def synthetic_image(size: int, grade: int, seed: int, wide: bool):
    """A generated fundus of ``grade``; redraws with other seeds if the image could
    not hold the grade's lesions. The grade is in :func:`synthetic_grade`."""
    from eyescan.api import synthetic

    shape = (size, size * 3 // 2) if wide else (size, size)
    for attempt in range(20):
        generated = synthetic.make_fundus(shape, seed=seed + 7919 * attempt, severity=grade)
        if reaches(generated.lesion_counts, grade):
            return generated
    raise ValueError(f"cannot draw grade {grade} at size {shape}")


def annotation_of(fundus_image, filename: str) -> BoxAnnotation:
    """Lesion boxes of a synthetic fundus (one per mask component)."""
    h, w = fundus_image.image.shape[:2]
    annotation = BoxAnnotation(filename, w, h)
    for label, attribute in MASKS.items():
        for box in boxes_from_mask(getattr(fundus_image, attribute)):
            annotation.labels.append(label)
            annotation.boxes.append(tuple(float(v) for v in box))
    return annotation


def write_synthetic_set(
    root: Path, n_train: int = 500, n_test: int = 200, size: int = 128, seed: int = 0
) -> Path:
    """Write ``n_train + n_test`` graded images (grades balanced) with boxes; returns ``root``."""
    root = Path(root)
    for folder in ("images", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).generate_state(n_train + n_test, np.uint32)
    grades_rows, box_rows, ids = [], [], {"train": [], "test": []}
    for index, child in enumerate(seeds):
        split = "train" if index < n_train else "test"
        grade = index % N_GRADES
        generated = synthetic_image(size, grade, int(child), wide=index % 2 == 1)
        name = f"drs_{index:04d}"
        image_path = root / "images" / f"{name}.png"
        imageio.save_png(image_path, generated.image)
        annotation = annotation_of(generated, image_path.name)
        write_voc_xml(root / "Annotations" / f"{name}.xml", annotation, image_path)
        grades_rows.append(
            [f"images/{image_path.name}", synthetic_grade(generated.lesion_counts), split]
        )
        for label, box in zip(annotation.labels, annotation.boxes):
            box_rows.append([f"images/{image_path.name}", label, *(int(v) for v in box), split])
        if not annotation.labels:  # an image without lesions still belongs to the set
            box_rows.append([f"images/{image_path.name}", "", "", "", "", "", split])
        ids[split].append(name)
    _write_csv(root / "grades.csv", ["image", "grade", "split"], grades_rows)
    _write_csv(
        root / "boxes.csv", ["image", "label", "xmin", "ymin", "xmax", "ymax", "split"], box_rows
    )
    for split, names in ids.items():
        imageio.write_text(root / "ImageSets" / "Main" / f"{split}.txt", "\n".join(names) + "\n")
    return root


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    imageio.write_text(path, buffer.getvalue())
