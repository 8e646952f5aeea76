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
from eyescan.data.readers import (
    BoxAnnotation,
    ClassFolderReader,
    ManifestReader,
    Reader,
    Sample,
    find_reader,
    read_box_csv,
    read_csv_rows,
    read_voc_xml,
)
from eyescan.errors import DataError, EyescanError, ImageReadError, UnknownNameError, WeightsError
from eyescan.evaluation import metrics
from eyescan.imaging import fundus, imageio, overlays
from eyescan.plugins.registry import get_registry
from eyescan.plugins.task import Prediction, Task

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
}

__all__ = [
    "HOOK_CONTRACT_VERSION",
    "__version__",
    "hookimpl",
    "Task",
    "Prediction",
    "Sample",
    "Reader",
    "ManifestReader",
    "find_reader",
    "get_registry",
    "EyescanError",
    "ClassFolderReader",
    "BoxAnnotation",
    "read_voc_xml",
    "read_box_csv",
    "read_csv_rows",
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
