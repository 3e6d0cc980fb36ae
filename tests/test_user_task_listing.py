"""User npz tasks in listings: real split sizes from the file headers, and one note when there is no validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medtui.cli import app

runner = CliRunner()


def npz(path: Path, n: tuple[int, int, int], size: int = 16) -> None:
    arrays = {}
    for split, k in zip(("train", "val", "test"), n):
        if k:
            arrays[f"{split}_images"] = np.zeros((k, size, size, 3), np.uint8)
            arrays[f"{split}_labels"] = (np.arange(k) % 2).reshape(-1, 1)
    np.savez_compressed(path, **arrays)


def tasks_file(tmp_path: Path) -> Path:
    npz(tmp_path / "derm.npz", (30, 6, 12))
    npz(tmp_path / "blood.npz", (20, 0, 8))
    f = tmp_path / "tasks.toml"
    f.write_text(
        '[[task]]\nname = "my-derm"\ndomain = "dermoscopy"\npath = "derm.npz"\nclasses = ["benign", "malignant"]\n\n'
        '[[task]]\nname = "my-blood"\ndomain = "blood cells"\npath = "blood.npz"\nclasses = ["a", "b"]\n'
    )
    return f


def test_datasets_json_gives_real_splits_for_npz_user_tasks(tmp_path: Path) -> None:
    r = runner.invoke(app, ["datasets", "--json", "--tasks-file", str(tasks_file(tmp_path))])
    assert r.exit_code == 0, r.output
    tasks = {t["name"]: t for t in json.loads(r.stdout)["tasks"]}
    assert tasks["my-derm"]["splits"] == {"train": 30, "val": 6, "test": 12}
    assert tasks["my-blood"]["splits"] == {"train": 20, "val": 0, "test": 8}


def test_datasets_table_shows_counts_and_notes_a_missing_val_split_once(tmp_path: Path) -> None:
    r = runner.invoke(app, ["datasets", "--tasks-file", str(tasks_file(tmp_path))], env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    derm = next(line for line in r.stdout.splitlines() if "my-derm" in line)
    blood = next(line for line in r.stdout.splitlines() if "my-blood" in line)
    assert "30/6/12" in derm and "20/0/8" in blood and "?" not in derm + blood
    assert r.stderr.count("no validation split") == 1 and "my-blood" in r.stderr


def test_a_run_on_a_task_without_val_says_so_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medtui.jobs import queue

    monkeypatch.setattr(queue, "spawn", lambda *a, **k: 4242)  # queued and claimed, never trained
    db = tmp_path / "s.db"
    r = runner.invoke(app, ["run", "--queue", "--tasks-file", str(tasks_file(tmp_path)), "--tasks", "my-blood,my-derm",
                            "--device", "cpu", "--db", str(db)])
    assert r.exit_code == 0, r.output
    assert r.stderr.count("no validation split") == 1
    from medtui.store.store import Store

    with Store(db) as s:
        rid = int(r.stdout.split()[0])
        assert sum("no validation split" in e["message"] for e in s.events(rid)) == 1
