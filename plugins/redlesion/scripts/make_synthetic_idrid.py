"""Write a synthetic red-lesion data set in IDRiD's segmentation layout.

    python plugins/redlesion/scripts/make_synthetic_idrid.py OUT --train 40 --test 20 \
        --height 128 --width 192 --seed 0

Images and exact MA/haemorrhage masks come from ``eyescan.api.synthetic.make_fundus``
(lesions of grades 1–4). Synthetic pictures: no accuracy claim about real photographs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eyescan_redlesion.data import write_synthetic_idrid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_synthetic_idrid(args.out, args.train, args.test, (args.height, args.width), args.seed)
    print(args.out)


if __name__ == "__main__":
    main()
