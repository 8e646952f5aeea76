"""CPU inference time of Red-Seg (VGG16, the seed's model) at the seed's 1072×712.

Times ``lesion_probabilities`` (normalise, pad to 1072×720, forward, sigmoid)
on a synthetic 1072×712 fundus image with random weights (speed does not
depend on the weights). Prints one JSON line with the machine's load.

    nice -n 10 python plugins/redlesion/scripts/cpu_inference_time.py --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from eyescan.api import synthetic
from eyescan_redlesion.models import lesion_probabilities, redseg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--width", type=float, default=1.0, help="channel width (1.0 = VGG16)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = redseg(width=args.width).eval()
    image = synthetic.make_fundus((712, 1072), seed=0, lesions=True).image
    lesion_probabilities(model, image)  # warm-up
    seconds, cpu = [], []
    for _ in range(args.runs):
        wall, proc = time.perf_counter(), time.process_time()
        lesion_probabilities(model, image)
        seconds.append(time.perf_counter() - wall)
        cpu.append(time.process_time() - proc)
    print(
        json.dumps(
            {
                "model": "redseg",
                "width": args.width,
                "input": "1072x712 (padded to 1072x720)",
                "runs": args.runs,
                "seconds_median": round(statistics.median(seconds), 3),
                "seconds_min": round(min(seconds), 3),
                "cpu_seconds_median": round(statistics.median(cpu), 3),
                "threads": torch.get_num_threads(),
                "cpus": os.cpu_count(),
                "load_average_1min": round(os.getloadavg()[0], 2),
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
