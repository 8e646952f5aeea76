"""Exceptions that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations


class EyescanError(Exception):
    """A problem the user can fix; the CLI prints it on one line (no traceback)."""

    code = "error"


class ImageReadError(EyescanError):
    """An input image cannot be decoded."""

    code = "unreadable_image"


class UnsuitableImageError(EyescanError):
    """A decodable image that a task cannot analyse: too small or too thin for it."""

    code = "unsuitable_image"


class WeightsError(EyescanError):
    """A weights file is missing, tampered with, or does not fit the model."""

    code = "bad_weights"


class DataError(EyescanError):
    """A data set folder or manifest is missing or malformed."""

    code = "bad_data"


class PluginError(EyescanError):
    """A plugin failed to load or register."""

    code = "plugin_error"


class UnknownNameError(EyescanError):
    """A task, model, loss or reader name that nothing registered."""

    code = "unknown_name"
