"""Imported once by the fork server of tests/killing.py: everything an eyescan run imports."""

import numpy  # noqa: F401
import PIL.Image  # noqa: F401
import torch  # noqa: F401

import eyescan.cli.app  # noqa: F401
import eyescan.inference.predicting  # noqa: F401
import eyescan.inference.screening  # noqa: F401
import tests.toy_pair  # noqa: F401
from eyescan.plugins.registry import get_registry

get_registry()  # imports the installed plugins' modules (nothing runs)
