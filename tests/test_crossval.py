"""Patient-grouped folds (eyescan.data.splits) and ``eyescan evaluate --cv`` on a toy task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eyescan.api import Sample, hookimpl, read_csv_rows, read_task_split
from eyescan.data import splits
from eyescan.evaluation.crossval import few_patients_warning, mean_sd
from eyescan.plugins import registry as plugins
from eyescan.testing import json_lines

from .toy_plugin import ToyPlugin, ToyTask


@dataclass
class Item:
    id: str
    label: int | None
    patient: str | None
    split: str | None = None


def items(patients: int, per: int = 2) -> list[Item]:
    return [Item(f"{p}-{k}", p % 2, f"P{p}", "train") for p in range(patients) for k in range(per)]


def test_leave_one_patient_out_has_one_fold_per_patient():
    samples = items(5) + [Item("lone", 1, None)]  # no patient: its own group
    folds = splits.make_folds(samples, splits.LEAVE_ONE_OUT)
    assert len(folds) == 6 and all(len(f.test_groups) == 1 for f in folds)
    assert folds[0].name == "fold 1 of 6 (leave-one-patient-out)"
    tested = [s.id for f in folds for s in splits.apply_fold(samples, f) if s.split == "test"]
    assert sorted(tested) == sorted(s.id for s in samples)  # every image tested once


def test_k_folds_are_grouped_stratified_and_order_free():
    samples = items(10, 3)
    folds = splits.make_folds(samples, 5, seed=1)
    assert folds == splits.make_folds(list(reversed(samples)), 5, seed=1)
    assert folds != splits.make_folds(samples, 5, seed=2)
    for fold in folds:
        marked = splits.apply_fold(samples, fold)
        test = [s for s in marked if s.split == "test"]
        train_patients = {s.patient for s in marked if s.split == "train"}
        assert len(test) == 6 and not {s.patient for s in test} & train_patients
        assert sorted(s.label for s in test) == [0, 0, 0, 1, 1, 1]  # one patient of each label
    with pytest.raises(Exception, match="cannot make 11 folds of 10"):
        splits.make_folds(samples, 11)


def test_warning_and_mean_sd():
    assert "measure nothing" in few_patients_warning(4)
    assert "next to nothing" in few_patients_warning(12) and few_patients_warning(20) is None
    table = mean_sd([{"acc": 1.0, "auc": float("nan")}, {"acc": 0.5, "auc": 0.8}])
    assert table["acc"][0] == 0.75 and table["acc"][1] == pytest.approx(0.3536, abs=1e-4)
    assert table["auc"] == [0.8, None]


class PatientCsv:
    """CSV ``image,label,patient`` for the toy task."""

    description = "toy CSV"

    def detect(self, path: Path) -> bool:
        return Path(path).suffix == ".csv"

    def read(self, path: Path, columns=None) -> list[Sample]:
        rows = read_csv_rows(path, ("image", "label"), columns)
        return [
            Sample(Path(r["image"]).stem, path.parent / r["image"], label=int(r["label"]),
                   patient=r.get("patient") or None)
            for r in rows
        ]  # fmt: skip


#: What each fold trained on (id lists), filled by FoldToyTask.train.
TRAINED: list[set[str]] = []


class FoldToyTask(ToyTask):
    """Reads its data through the core's split rule, so it can be cross-validated."""

    def train(self, data, options):
        chosen = read_task_split("toy", data, options, "train")
        TRAINED.append({s.id for s in chosen.samples})
        return {**super().train(data, options), "data_split": chosen.info}

    def evaluate(self, model, data, options):
        chosen = read_task_split("toy", data, options)
        ids = [s.id for s in chosen.samples]
        assert not set(ids) & TRAINED[-1]
        labels = [s.label for s in chosen.samples]
        summary = {"images": len(ids), "positives": float(np.mean(labels)),
                   "data_split": chosen.info}  # fmt: skip
        return {"summary": summary, "images": [{"id": i} for i in ids]}


class FoldToyPlugin(ToyPlugin):
    def __init__(self, task):
        self.task = task

    @hookimpl
    def register_tasks(self, register):
        register(self.task)

    @hookimpl
    def register_readers(self, register):
        register("toy", "patients", PatientCsv())


@pytest.fixture
def table(tmp_path) -> Path:
    rows = ["file,truth,infant,split"]  # the user's own column names
    for i in range(8):
        Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png,{i % 2},I{i // 2},Test")  # 4 infants, each of both labels
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "labels.csv"


def test_evaluate_cv_trains_and_scores_every_fold(invoke, table, tmp_path):
    plugins.reset_registry([("toy", FoldToyPlugin(FoldToyTask()))])
    TRAINED.clear()
    columns = "image=file,label=truth,patient=infant,split=split"
    result = invoke("evaluate", "toy", table, "--columns", columns, "--cv",
                    "leave-one-patient-out", "--cv-out", tmp_path / "cv", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    records = json_lines(result.stdout)
    summary = records[-1]
    assert summary["kind"] == "summary" and summary["folds"] == 4 == summary["patients"]
    assert [f["test_patients"] for f in summary["per_fold"]] == [["I0"], ["I1"], ["I2"], ["I3"]]
    assert all(f["images"] == 2 and f["positives"] == 0.5 for f in summary["per_fold"])
    assert summary["mean_sd"]["images"] == [2.0, 0.0]
    assert "measure nothing" in summary["warning"] and "warning" in result.stderr
    assert sorted(r["id"] for r in records[:-1]) == [str(i) for i in range(8)]  # each once
    assert [len(t) for t in TRAINED] == [6] * 4  # the split column "Test" was replaced
    assert (tmp_path / "cv" / "fold4" / "scale.safetensors").exists()
    table = invoke("evaluate", "toy", table, "--columns", columns, "--cv", "2",
                   "--cv-out", tmp_path / "cv")  # fmt: skip
    assert table.exit_code == 0, table.stderr
    assert "mean ± sd" in table.stdout and "2-fold" in table.stdout


def test_evaluate_cv_refuses_tasks_and_flags_it_cannot_serve(invoke, table, tmp_path):
    plugins.reset_registry([("toy", FoldToyPlugin(ToyTask()))])  # ignores the folds
    base = ("evaluate", "toy", table, "--columns", "image=file,label=truth,patient=infant")
    result = invoke(*base, "--cv", "2", "--cv-out", tmp_path / "cv")
    assert result.exit_code != 0 and "cannot be cross-validated" in result.stderr
    for extra in (("--cv", "one"), ("--cv", "1"), ("--cv", "2", "--holdout", "0.3"),
                  ("--cv", "2", "--weights", table)):  # fmt: skip
        result = invoke(*base, *extra)
        assert result.exit_code == 2, (extra, result.stderr)
