"""Write the synthetic graded fundus set with lesion boxes used for the README numbers.

    python plugins/drgrade/scripts/make_synthetic_set.py runs/drgrade-synthetic/data \
        --train 1000 --test 250 --size 128 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eyescan_drgrade.synthetic_set import write_synthetic_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=250)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_synthetic_set(args.root, args.train, args.test, args.size, args.seed)
    print(args.root)


if __name__ == "__main__":
    main()
