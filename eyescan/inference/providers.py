"""One task using another's output: resolve a task's ``needs`` to the tasks that ``provide`` them.

A task declares ``needs = (Need("vessel_probability"),)``; another declares
``provides = {"vessel_probability": "probability"}`` (a key of its
``Prediction.arrays``). The core finds the provider among the installed
tasks, loads its default model once and runs it on each photo before the
consumer's ``preprocess``, which gets the array in ``provided``. In a
multi-task run where the provider task also runs, its prediction is reused
(the model runs once per photo). No plugin imports another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eyescan.errors import EyescanError, PluginError
from eyescan.inference.photos import check_fits
from eyescan.plugins.task import CORE_NEEDS, Task


@dataclass
class Provider:
    """A loaded task that provides ``need`` (``key`` of its prediction arrays)."""

    need: str
    task: Task
    model: Any
    key: str

    def extract(self, prediction: Any) -> Any:
        """The provided array of one of the provider's predictions."""
        arrays = getattr(prediction, "arrays", None) or {}
        if self.key not in arrays:
            raise PluginError(
                f"task {self.task.name!r} provides {self.need!r} as arrays[{self.key!r}], "
                "but its prediction has no such array"
            )
        return arrays[self.key]

    def run(self, hook: Any, image: Any, source: str, provided: dict[str, Any]) -> Any:
        """Run the provider on one photo and return what it provides."""
        check_fits(self.task, image, source, f"provider of {self.need}")
        item = hook.preprocess(task=self.task, image=image, source=source, provided=provided)
        predictions = hook.predict(task=self.task, model=self.model, batch=[item])
        if not predictions or len(predictions) != 1:
            raise PluginError(f"provider task {self.task.name!r} returned no prediction")
        return self.extract(predictions[0])

    def companion(self) -> dict[str, Any]:
        """The provider's entry in a record's ``companions`` (audit trail)."""
        card = getattr(self.model, "card", None) or {}
        weights = getattr(self.model, "weights", None)
        return {
            "role": f"{self.need} from {self.task.name}",
            "model": getattr(self.model, "name", ""),
            "weights": None if weights is None else str(weights),
            "sha256": getattr(self.model, "sha256", None),
            "synthetic_only": bool(card.get("synthetic_only")),
        }


def provider_of(tasks: dict[str, Task], need: str, prefer: list[str] = ()) -> str | None:
    """The name of the task that provides ``need``: one of ``prefer`` first, else by name."""
    names = [n for n in prefer if need in tasks[n].provides] if prefer else []
    names += sorted(n for n, t in tasks.items() if need in t.provides and n not in names)
    return names[0] if names else None


def resolve(tasks: dict[str, Task], task: Task, running: list[str] = ()) -> dict[str, str]:
    """``{need: provider task name}`` for the task's needs that another task meets.

    Needs the core fills itself (``fov``) are left out; a required need that
    nothing provides raises an error naming it; an optional one is skipped.
    """
    found: dict[str, str] = {}
    for need in task.needs:
        if need.name in CORE_NEEDS:
            continue
        name = provider_of(tasks, need.name, [n for n in running if n != task.name])
        if name == task.name:
            name = None
        if name is None:
            if need.required:
                raise EyescanError(
                    f"task {task.name!r} needs {need.name!r}, which no installed task "
                    "provides (see 'eyescan tasks')"
                )
            continue
        found[need.name] = name
    return found


def run_order(tasks: dict[str, Task], names: list[str]) -> list[str]:
    """``names`` ordered so that every provider in the run comes before its consumers."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise EyescanError(f"tasks {', '.join(sorted(visiting))} need each other's outputs")
        visiting.add(name)
        for provider in resolve(tasks, tasks[name], names).values():
            if provider in names:
                visit(provider)
        visiting.discard(name)
        ordered.append(name)

    for name in names:
        visit(name)
    return ordered
