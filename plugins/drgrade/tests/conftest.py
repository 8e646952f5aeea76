"""Shared fixtures of the drgrade tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two busy cores: one torch thread avoids OpenMP threads waiting on each other."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _photo(path, seed: int, shape: tuple[int, int]) -> None:
    from eyescan.api import imageio, synthetic

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.save_png(path, synthetic.make_fundus(shape, seed=seed, severity=seed % 4).image)


@pytest.fixture
def photo():
    """``photo(path, seed, (h, w))`` writes a synthetic fundus photograph."""
    return _photo


#: CODRAS's YOLO classes (``classes.txt``) and two boxes written for every IDRiD image.
CODRAS_CLASSES = ("optic_disc", "hard_exudates", "haemorrhage")
YOLO_LINES = "0 0.30 0.50 0.20 0.30\n1 0.55 0.40 0.10 0.12\n2 0.65 0.62 0.08 0.10\n"


@pytest.fixture(scope="module")
def grading_layouts(tmp_path_factory):
    """IDRiD part B (official names; 10 training, 5 testing 3:2 photographs, both labels,
    CODRAS-style YOLO boxes) and an APTOS layout (15 square photographs, grades only)."""
    root = tmp_path_factory.mktemp("grading")
    idrid = root / "B. Disease Grading"
    (idrid / "2. Groundtruths").mkdir(parents=True)
    boxes = idrid / "3. Lesion boxes (CODRAS, YOLO)"
    boxes.mkdir()
    (boxes / "classes.txt").write_text("\n".join(CODRAS_CLASSES) + "\n")
    for split, word, count, first_seed in (("a", "Training", 10, 0), ("b", "Testing", 5, 50)):
        rows = ["Image name,Retinopathy grade,Risk of macular edema "]
        (boxes / f"{split}. {word} Set").mkdir()
        for n in range(1, count + 1):
            name = f"IDRiD_{n:03d}"
            _photo(idrid / "1. Original Images" / f"{split}. {word} Set" / f"{name}.png",
                   first_seed + n, (48, 72))  # fmt: skip
            (boxes / f"{split}. {word} Set" / f"{name}.txt").write_text(YOLO_LINES)
            rows.append(f"{name},{n % 5},{n % 3}")
        table = idrid / "2. Groundtruths" / f"{split}. IDRiD_Disease Grading_{word} Labels.csv"
        table.write_text("\n".join(rows) + "\n")
    aptos = root / "APTOS2019"
    rows = ["id_code,diagnosis"]
    for n in range(15):
        _photo(aptos / "train_images" / f"{n:03d}a1b2c3d4e.png", 100 + n, (48, 48))
        rows.append(f"{n:03d}a1b2c3d4e,{n % 5}")
    (aptos / "train.csv").write_text("\n".join(rows) + "\n")
    return idrid, aptos
