"""Ship a trained cascade's stage-1 and stage-2 weights with the plugin (float16, linked cards).

The stage-1 card names the stage-2 file and its SHA-256 (``stage2_weights``,
``stage2_sha256``). ``--relink`` only rewrites the stage-1 card of weights
already in ``--out`` (the safetensors files stay byte-identical).

    python plugins/rop/scripts/ship_weights.py \
        runs/rop-synthetic/cv5/fold1/mn-rop/mn-rop.safetensors

Writes ``eyescan_rop/weights/<model>.safetensors`` (stage 1, the default weights of
``eyescan predict rop``) and ``<stage-2 name>.safetensors``, stored as float16 to halve
their size, and prints how far the float16 copies' probabilities move on a few
synthetic images.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from eyescan.api import get_registry, models, weights
from eyescan_rop.cascade import Cascade, stage2_link
from eyescan_rop.data import enhance
from eyescan_rop.synthetic import make_rop_fundus

WEIGHTS = Path(__file__).resolve().parents[1] / "eyescan_rop" / "weights"
GENERATED = {"schema", "format", "file", "sha256", "parameters", "eyescan_version", "created"}
LINK = {"stage2_weights", "stage2_sha256"}
STAGE2_NAMES = {"mn-rop": "mn-tr-rop", "ms-rop": "ms-tr-rop"}


def ship(loaded, path: Path, **extra) -> None:
    card = {k: v for k, v in loaded.card.items() if k not in GENERATED | LINK}
    card.update(extra, stored_dtype="float16", shipped_from=str(loaded.weights))
    weights.save_weights(copy.deepcopy(loaded.module).half(), path, card)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage1", type=Path, help="stage-1 weights whose card links stage 2")
    parser.add_argument(
        "--relink",
        metavar="STAGE2",
        type=Path,
        help="only record STAGE2 (file and SHA-256) in the card of STAGE1",
    )
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--note", default="synthetic-data demo weights; not for clinical use")
    parser.add_argument(
        "--real-data", action="store_true", help="trained on real photographs (no synthetic flag)"
    )
    args = parser.parse_args()
    if args.relink:
        card = weights.update_card(args.stage1, **stage2_link(args.stage1, args.relink))
        print(f"{args.stage1}: stage 2 {card['stage2_weights']} sha256 {card['stage2_sha256']}")
        return
    registry = get_registry()
    source = Cascade.of(models.load(registry, "rop", None, args.stage1))
    if source.stage2 is None:
        raise SystemExit(f"{args.stage1}: its card links no stage-2 weights")
    name = source.stage1.name
    args.out.mkdir(parents=True, exist_ok=True)
    stage2_file = f"{STAGE2_NAMES.get(name, name + '-stage2')}.safetensors"
    flags = {"note": args.note, "synthetic_only": not args.real_data}  # predict warns on it
    ship(source.stage2, args.out / stage2_file, **flags)
    link = stage2_link(args.out / f"{name}.safetensors", args.out / stage2_file)
    ship(source.stage1, args.out / f"{name}.safetensors", **link, **flags)

    shipped = Cascade.of(models.load(registry, "rop", None, args.out / f"{name}.safetensors"))
    images = [enhance(make_rop_fundus(128, seed=100 + i, label=i % 3).image) for i in range(6)]
    p_source = (
        Cascade(source.stage1, None).probabilities(images)[0],
        Cascade(None, source.stage2).probabilities(images)[1],
    )
    p_shipped = (
        Cascade(shipped.stage1, None).probabilities(images)[0],
        Cascade(None, shipped.stage2).probabilities(images)[1],
    )
    diffs = [float(np.max(np.abs(a - b))) for a, b in zip(p_source, p_shipped)]
    for f in (f"{name}.safetensors", stage2_file):
        print(f"{args.out / f}: {(args.out / f).stat().st_size / 1e6:.1f} MB")
    print(
        f"float16 vs float32, max |Δ probability| on 6 synthetic images: "
        f"stage 1 {diffs[0]:.2e}, stage 2 {diffs[1]:.2e}"
    )


if __name__ == "__main__":
    main()
