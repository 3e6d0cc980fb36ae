"""A real run on the official MedMNIST files shipped beside the project (breast ultrasound → chest X-ray)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from medtui.cli import app


def test_continual_rehearsal_run_on_real_medmnist(shared_medmnist: Path, db: Path) -> None:
    r = CliRunner().invoke(
        app,
        [
            "run", "--headless", "--json", "--db", str(db), "--data-dir", str(shared_medmnist),
            "--tasks", "breastmnist,pneumoniamnist", "--buffer-size", "40", "--epochs", "1",
            "--max-train", "256", "--max-test", "128", "--device", "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["status"] == "finished"
    assert d["columns"] == ["breastmnist", "pneumoniamnist"]
    assert d["rows"] == ["zero-shot", "after breastmnist", "after pneumoniamnist"]
    assert all(v is not None and 0 <= v <= 1 for row in d["matrix"] for v in row)
    assert d["buffer"]["per_task"] == {"breastmnist": 20, "pneumoniamnist": 20}
    assert set(d["fingerprints"]) == {"breastmnist", "pneumoniamnist"}
    assert d["config"]["data_dir"] == str(shared_medmnist)
    # per-class accuracies of the two-class test sets are recorded for every evaluation point
    assert set(d["per_class"]["after pneumoniamnist"]) == {"breastmnist", "pneumoniamnist"}
    assert all(len(v) == 2 for v in d["per_class"]["zero-shot"].values())
    # AUC is defined on both (both classes present in the capped test splits)
    assert all(a is not None for row in d["auc"] for a in row)
