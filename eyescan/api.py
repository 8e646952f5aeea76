"""The public API for plugins: import from here, nothing else of the core.

Torch-free names are imported eagerly; the torch-dependent modules
(``training``, ``segmentation``, ``augment``, ``weights``, ``models``) load
on first access, so a plugin's ``__init__`` can import this module and keep
``eyescan --help`` fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

from eyescan import HOOK_CONTRACT_VERSION, __version__
from eyescan.data import splits
from eyescan.data.duplicates import DuplicateGroup, file_sha256, find_identical, resolve_duplicates
from eyescan.data.readers import (
    BoxAnnotation,
    ClassFolderReader,
    ManifestReader,
    Reader,
    Sample,
    SplitData,
    find_reader,
    parse_columns,
    read_box_csv,
    read_csv_rows,
    read_samples,
    read_split,
    read_task_split,
    read_voc_xml,
    split_of,
)
from eyescan.data.yolo import find_yolo_names, read_yolo_boxes, read_yolo_names, yolo_annotation
from eyescan.engine import recipes
from eyescan.errors import DataError, EyescanError, ImageReadError, UnknownNameError, WeightsError
from eyescan.evaluation import bootstrap, metrics
from eyescan.imaging import fundus, imageio, overlays
from eyescan.inference.options import given_fov, operating_threshold
from eyescan.plugins.registry import get_registry
from eyescan.plugins.task import Need, Prediction, PredictOption, Task

hookimpl = pluggy.HookimplMarker("eyescan")

#: Torch-dependent modules, loaded on first access: ``api.NAME`` -> module.
_LAZY_MODULES = {
    "training": "eyescan.engine.training",
    "segmentation": "eyescan.inference.segmentation",
    "augment": "eyescan.imaging.augment",
    "weights": "eyescan.models.weights",
    "models": "eyescan.models.loading",
    "synthetic": "eyescan.data.synthetic",
    "explain": "eyescan.inference.explain",
    "plots": "eyescan.reports.plots",  # evaluation figures; plots.binary_curves for curves
    "init": "eyescan.models.init",  # initialisation from a local weights file (recipe "init")
    "cost": "eyescan.models.cost",  # parameters, FLOPs, MACs
    "benchmarking": "eyescan.deploy.benchmarking",  # timed(fn, iterations, warmup), …
}

__all__ = [
    "HOOK_CONTRACT_VERSION",
    "__version__",
    "hookimpl",
    "Task",
    "Prediction",
    "PredictOption",
    "Need",
    "operating_threshold",
    "given_fov",
    "SplitData",
    "read_split",
    "read_task_split",
    "read_samples",
    "parse_columns",
    "splits",
    "recipes",
    "bootstrap",
    "Sample",
    "Reader",
    "ManifestReader",
    "find_reader",
    "get_registry",
    "EyescanError",
    "ClassFolderReader",
    "BoxAnnotation",
    "read_voc_xml",
    "read_yolo_boxes",
    "read_yolo_names",
    "find_yolo_names",
    "yolo_annotation",
    "DuplicateGroup",
    "file_sha256",
    "find_identical",
    "resolve_duplicates",
    "read_box_csv",
    "read_csv_rows",
    "split_of",
    "DataError",
    "ImageReadError",
    "WeightsError",
    "UnknownNameError",
    "fundus",
    "imageio",
    "metrics",
    "overlays",
    *sorted(_LAZY_MODULES),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    raise AttributeError(f"module 'eyescan.api' has no attribute {name!r}")
