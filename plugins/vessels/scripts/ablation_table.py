"""Print the SCCU-Net ablation table (Markdown) from the runs of ``ablation.sh``.

    python plugins/vessels/scripts/ablation_table.py OUT [MODEL ...]

For each model, reads ``OUT/MODEL/test-NAME.jsonl`` (``eyescan evaluate
vessels --json`` on data set NAME; one column group per data set, in name
order) and ``OUT/MODEL/benchmark.json`` (``eyescan benchmark vessels
--json``), and counts the parameters and the forward GFLOPs at DRIVE size
(584×565, padded to a multiple of the network stride as the task pads it;
``api.cost.count_flops``: convolutions and matrix products, 2 FLOPs per
multiply-add, element-wise work not counted) on the registered model itself.
Published reference rows follow the measured ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LADDER = ["unet", "unet-scc", "unet-sam", "unet-isam", "sccunet"]
DRIVE_SIZE = (584, 565)  # height, width of a DRIVE photograph
#: Published numbers (spec vessels.md), other protocols; for reference, not measured here.
PUBLISHED = [
    "| SA-UNet (2020, published) | 0.54 M | — | — | 0.9864 | 0.8263 | 0.9698 | — | — |",
    "| IterNet (2020, published) | 8.7 M | — | — | 0.9816 | 0.8205 | 0.9573 | — | — |",
]


def summary(path: Path) -> dict:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return next(r for r in reversed(lines) if r.get("kind") == "summary")


def size_and_flops(model: str) -> tuple[int, float]:
    """Parameters and GFLOPs of one forward at DRIVE size (the task's padded input)."""
    import torch

    from eyescan.api import cost, get_registry, models

    module = models.create(get_registry(), "vessels", model).eval()
    stride = getattr(module, "stride", 16)
    h, w = (-(-side // stride) * stride for side in DRIVE_SIZE)  # 584×565 → 592×576
    return cost.count_parameters(module), cost.count_flops(module, torch.zeros(1, 3, h, w)) / 1e9


def num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


#: Columns of each data set's group: (header, summary key).
COLUMNS = [
    ("AUC-ROC", "auc_roc"),
    ("F1", "f1"),
    ("Acc", "accuracy"),
    ("SE", "sensitivity"),
    ("SP", "specificity"),
]


def data_sets(out: Path, model: str) -> list[str]:
    """The data sets a model was scored on: NAME of each ``test-NAME.jsonl``, sorted."""
    return sorted(p.stem.removeprefix("test-") for p in (out / model).glob("test-*.jsonl"))


def row(out: Path, model: str, names: list[str]) -> str:
    parameters, gflops = size_and_flops(model)
    bench = json.loads((out / model / "benchmark.json").read_text().splitlines()[-1])
    cells = [f"`{model}`", f"{parameters:,}", f"{gflops:.2f}", f"{bench['images_per_s']:.2f}"]
    for name in names:
        test = summary(out / model / f"test-{name}.jsonl")
        cells += [num(test.get(key)) for _, key in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    out, models = Path(argv[0]), argv[1:] or LADDER
    names = data_sets(out, models[0])
    if not names:
        sys.exit(f"{out / models[0]}: no test-NAME.jsonl (run ablation.sh first)")
    prefix = "" if len(names) == 1 else "{} "
    headers = [prefix.format(name) + header for name in names for header, _ in COLUMNS]
    header = ["model", "params", "GFLOPs (584×565)", "CPU images/s", *headers]
    print("| " + " | ".join(header) + " |\n" + "| --- " * len(header) + "|")
    for model in models:
        print(row(out, model, names))
    if len(names) == 1:  # the published rows are DRIVE's columns
        print("\n".join(PUBLISHED))


if __name__ == "__main__":
    main(sys.argv[1:])
