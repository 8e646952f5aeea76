"""Markdown tables from a pytest-benchmark JSON file (the suite's output).

python benchmarks/table.py results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        median = bench["stats"]["median"]
        images = info.get("images", 1)
        out.append(
            {
                "test": bench["name"].split("[")[0].removeprefix("test_"),
                "task": info.get("task", ""),
                "model": info.get("model", ""),
                "backend": info.get("backend", ""),
                "median_ms": median * 1e3,
                "images_per_s": images / median,
                "gflops": info.get("gflops"),
                "input": info.get("input") or info.get("image"),
            }
        )
    return out


def forward_table(table: list[dict[str, Any]]) -> list[str]:
    forward = {(r["task"], r["model"], r["backend"]): r for r in table if r["test"] == "forward"}
    lines = [
        "| task | model | input | GFLOPs | torch img/s | onnx img/s | onnx / torch |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for task, model in sorted({(t, m) for t, m, _ in forward}):
        torch_row, onnx_row = (
            forward.get((task, model, "torch")),
            forward.get((task, model, "onnx")),
        )
        first = torch_row or onnx_row
        speed = [r["images_per_s"] if r else None for r in (torch_row, onnx_row)]
        ratio = f"{speed[1] / speed[0]:.2f}×" if all(speed) else "–"
        lines.append(
            f"| {task} | {model} | {'×'.join(map(str, first['input'][0]))} | "
            f"{first['gflops']:.2f} | {_num(speed[0])} | {_num(speed[1])} | {ratio} |"
        )
    return lines


def other_table(table: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| benchmark | task | backend | median ms | images/s |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in table:
        if r["test"] != "forward":
            lines.append(
                f"| {r['test']} | {r['task']} | {r['backend']} | {r['median_ms']:.1f} | "
                f"{r['images_per_s']:.2f} |"
            )
    return lines


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def main(path: str) -> None:
    data = json.loads(Path(path).read_text())
    table = rows(data)
    machine = data.get("machine_info", {})
    print(
        f"Machine: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', ''))}; "
        f"run {data.get('datetime', '')}\n"
    )
    print("\n".join(forward_table(table)))
    print()
    print("\n".join(other_table(table)))


if __name__ == "__main__":
    main(sys.argv[1])
