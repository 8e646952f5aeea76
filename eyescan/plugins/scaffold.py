"""``eyescan plugin new``: write a ready, installable task plugin from templates.

The plugin has the layout every plugin must have (docs/plugins.md): a
``pyproject.toml`` with the ``eyescan`` entry point, ``eyescan_<task>/`` with
``__init__.py`` (hook implementations only, torch-free), ``task.py`` (the
Task: preprocess, predict, outputs), ``data.py`` (readers of the
``read(path, columns)`` protocol), ``models.py``, ``losses.py``,
``training.py``, ``evaluation.py`` (never imports ``training.py``),
``recipes/`` and ``weights/``, a ``README.md`` and ``tests/``. The generated
code imports the core through ``eyescan.api`` only. Templates live in
``eyescan/plugins/templates/plugin``: ``common/`` for every kind, then
``classify/``, ``segment/`` or ``detect/``. A template is text with
``{{token}}`` placeholders (file names included); the ``.tmpl`` suffix keeps
pytest and ruff away from them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from eyescan import HOOK_CONTRACT_VERSION, __version__
from eyescan.errors import EyescanError

TEMPLATES = Path(__file__).parent / "templates" / "plugin"
TEMPLATE_SUFFIX = ".tmpl"
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")
MAX_NAME_LENGTH = 30
_TOKEN = re.compile(r"\{\{(\w+)\}\}")
#: The modules every plugin package has (docs/plugins.md, "Layout"); extras may sit beside them.
PLUGIN_MODULES = (
    "__init__.py",
    "task.py",
    "data.py",
    "models.py",
    "losses.py",
    "training.py",
    "evaluation.py",
)


class ScaffoldError(EyescanError):
    """The plugin cannot be written (bad name or kind, folder already there)."""

    code = "scaffold_failed"


@dataclass(frozen=True)
class Kind:
    """What a task kind's starting plugin holds."""

    description: str
    model: str
    model_description: str
    loss: str  # appended to the task name: loss names are global
    loss_description: str


KINDS: dict[str, Kind] = {
    "classify": Kind(
        "classification of fundus photographs (normal / abnormal)",
        "tiny_cnn",
        "three conv blocks, global average pooling, linear head",
        "ce",
        "cross-entropy over the classes",
    ),
    "segment": Kind(
        "segmentation of fundus photographs",
        "tiny_unet",
        "one-level U-Net (width 8), any image size",
        "bce-dice",
        "binary cross-entropy + 0.5 soft Dice",
    ),
    "detect": Kind(
        "detection of one object per fundus photograph",
        "tiny_boxnet",
        "small CNN regressing one box and its score (not Faster R-CNN)",
        "box",
        "score BCE + 5 smooth L1 on the box",
    ),
}


@dataclass
class Scaffold:
    """A written plugin: its folder and the files in it (relative paths)."""

    root: Path
    package: str
    files: list[str]


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a task/plugin name, or None when it can."""
    if not NAME_PATTERN.fullmatch(name):
        return (
            f"plugin name {name!r}: use lower-case letters and digits, words joined by "
            "'_' or '-', starting with a letter (e.g. 'optic_disc')"
        )
    if len(name) > MAX_NAME_LENGTH:
        return f"plugin name {name!r}: at most {MAX_NAME_LENGTH} characters"
    return None


def core_requirement(version: str = __version__) -> str:
    """The eyescan releases a new plugin accepts: this minor series before 1.0, major after."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"eyescan>={major}.{minor},<{upper}"


def tokens(name: str, kind: str) -> dict[str, str]:
    """The values of the templates' ``{{token}}`` placeholders."""
    spec = KINDS[kind]
    module = name.replace("-", "_")
    return {
        "task": name,
        "module": module,
        "package": f"eyescan_{module}",
        "dist": f"eyescan-{name.replace('_', '-')}",
        "Class": "".join(part.capitalize() for part in re.split("[_-]", name)) + "Task",
        "kind": kind,
        "description": spec.description,
        "model": spec.model,
        "model_description": spec.model_description,
        "loss": f"{name}-{spec.loss}",
        "loss_description": spec.loss_description,
        "core_requirement": core_requirement(),
        "contract": str(HOOK_CONTRACT_VERSION),
    }


def render(text: str, values: dict[str, str]) -> str:
    """Replace every ``{{token}}``; an unknown token is a template bug (KeyError)."""
    return _TOKEN.sub(lambda match: values[match.group(1)], text)


def plan(name: str, kind: str) -> dict[str, str]:
    """Relative path → text of every file of the plugin (kind files override common ones)."""
    values = tokens(name, kind)
    files: dict[str, str] = {}
    for folder in (TEMPLATES / "common", TEMPLATES / kind):
        for template in sorted(folder.rglob(f"*{TEMPLATE_SUFFIX}")):
            relative = template.relative_to(folder).as_posix()[: -len(TEMPLATE_SUFFIX)]
            files[render(relative, values)] = render(template.read_text(encoding="utf-8"), values)
    return files


def new_plugin(name: str, kind: str = "classify", parent: Path = Path(".")) -> Scaffold:
    """Write the plugin ``name`` of ``kind`` to ``parent/name`` (all files or none)."""
    problem = name_problem(name)
    if problem:
        raise ScaffoldError(problem)
    if kind not in KINDS:
        raise ScaffoldError(f"unknown plugin kind {kind!r} (kinds: {', '.join(KINDS)})")
    parent = Path(parent)
    root = parent / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScaffoldError(f"{root}: already exists and is not empty; pick another name or --dir")
    files = plan(name, kind)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    staging.chmod(0o755)  # mkdtemp's folder is private
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if root.exists():
            root.rmdir()  # empty, checked above
        os.replace(staging, root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Scaffold(root, tokens(name, kind)["package"], sorted(files))
