"""``eyescan export`` (ONNX, checked against torch) and ``eyescan benchmark``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eyescan.cli.common import (
    Backend,
    BackendOpt,
    BatchOpt,
    DebugOpt,
    JsonOpt,
    ModelOpt,
    QuantizeOpt,
    TaskArg,
    WeightsOpt,
    err,
    handle_errors,
    load_backend,
    out,
    print_json,
    registry,
)


@handle_errors
def benchmark(
    task: TaskArg,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    batch_size: BatchOpt = 1,
    size: Annotated[int, typer.Option(help="Square input size in pixels.")] = 512,
    iterations: Annotated[int, typer.Option(min=1, help="Timed runs.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed runs first.")] = 2,
    backend: BackendOpt = Backend.torch,
    quantize: QuantizeOpt = False,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Measure latency (median, p95), images/s, memory, GFLOPs and fraction of matmul peak."""
    from rich.table import Table

    from eyescan.deploy.benchmarking import run_benchmark
    from eyescan.deploy.onnx_backend import torch_twin

    reg = registry()
    task_obj = reg.task(task)
    loaded = load_backend(reg, task_obj, model, weights, backend, quantize, random_init=True)
    result = run_benchmark(
        reg, task_obj, loaded, batch_size, size, iterations, warmup, torch_twin(reg, loaded)
    )
    if json_out:
        print_json(result)
        return
    table = Table("measure", "value")
    for k, v in result.items():
        table.add_row(k, f"{v:.3f}" if isinstance(v, float) else str(v))
    out.print(table)


@handle_errors
def export(
    task: TaskArg,
    onnx: Annotated[Path, typer.Option("--onnx", help="ONNX file to write (+ OUT.json card).")],
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    size: Annotated[int, typer.Option(min=16, help="Example image size for the check.")] = 64,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Export a model to ONNX (dynamic batch; dynamic H/W for segmentation), checked vs torch."""
    from rich.table import Table

    from eyescan.deploy import onnx_backend, onnx_export

    reg = registry()
    task_obj = reg.task(task)
    loaded = onnx_backend.load_torch(reg, task_obj, model, weights)
    card = onnx_export.export(reg, task_obj, loaded, onnx, size)
    if json_out:
        print_json(card)
        return
    parity = card["onnx"]["parity"]
    table = Table("check", "value")
    table.add_row("max |torch - onnx| output", f"{parity['output_max_abs_diff']:.3g}")
    table.add_row("tolerance", f"{parity['output_tolerance']:.3g}")
    for key, diff in parity["values"].items():
        what = "max |diff|" if "max_abs_diff" in diff else "agreement"
        table.add_row(f"{key} ({what})", str(diff.get("max_abs_diff", diff.get("agreement"))))
    out.print(table)
    err.print(
        f"wrote {onnx} ({card['sha256'][:12]}…) and {onnx_backend.card_path(onnx).name}; "
        f"parity ok at sizes {parity['sizes']}",
        highlight=False,
    )
