"""Write a synthetic ROP data set: images/*.png and manifest.csv (image, label, patient).

Synthetic data only: the pictures are plausible, not realistic; see eyescan_rop/synthetic.py.

    python plugins/rop/scripts/make_synthetic.py runs/rop-synthetic/data --patients 100
    python plugins/rop/scripts/make_synthetic.py runs/rop-synthetic/test --seed 1 --split test
"""

from __future__ import annotations

import argparse
import time

from eyescan_rop.synthetic import write_rop_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--photos", type=int, default=2, help="photos per patient")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split", choices=("train", "val", "test"), help="mark every row with this split"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    manifest = write_rop_dataset(
        args.root, args.patients, args.photos, args.size, args.seed, split=args.split
    )
    print(
        f"{manifest} ({args.patients} patients × {args.photos} photos, {args.size}²) "
        f"in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
