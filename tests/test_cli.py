"""The CLI: --help everywhere, one-line errors with exit code 2, headless runs, listings, compare."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app

runner = CliRunner()
FAST = ["--tasks", "synth-cxr-a,synth-derm", "--epochs", "1", "--max-train", "64", "--max-test", "32", "--device", "cpu"]


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def test_every_command_has_help() -> None:
    import typer.main

    names = list(typer.main.get_command(app).commands)
    assert {"run", "runs", "show", "compare", "datasets", "models", "resume", "cancel", "queue", "logs", "delete", "serve"} <= set(names)
    for name in names:
        r = invoke(name, "--help")
        assert r.exit_code == 0, name
        assert "Usage:" in r.stdout


def count_runs(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        return c.execute("select count(*) from runs").fetchone()[0]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--tasks", "synth-cxr,synth-derm"], "unknown task 'synth-cxr'"),
        (["--tasks", "synth-cxr-a", "--model", "ViT-Q-99"], "unknown model 'ViT-Q-99'"),
        (["--paradigm", "sequential"], "unknown paradigm"),
        (["--paradigm", "joint", "--buffer-size", "10"], "only applies to the continual paradigm"),
        (["--buffer-size", "-5"], "buffer size must be >= 0"),
        (["--epochs", "0"], "epochs must be > 0"),
        (["--batch-size", "-1"], "batch size must be > 0"),
        (["--lr", "0"], "learning rate must be > 0"),
        (["--max-train", "0"], "max train must be > 0"),
        (["--device", "gpu7"], "unknown device"),
        (["--tune", "adapters"], "unknown tuning mode"),
        (["--tasks", "synth-derm", "--heldout", "synth-derm"], "both trained and held out"),
        (["--tasks", "chestmnist"], "multi-label"),
        (["--epochs", "three"], "Invalid value for '--epochs'"),
        (["--no-such-flag"], "No such option"),
        (["--config", "missing.toml"], "cannot read config"),
    ],
)
def test_bad_run_input_is_one_line_exit_2_and_stores_nothing(args: list[str], needle: str, db: Path) -> None:
    r = invoke("run", "--headless", "--db", str(db), *args)
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output
    assert count_runs(db) == 0


def test_malformed_and_unknown_toml_keys(tmp_path: Path, db: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("tasks = [synth-cxr-a\n")
    r = invoke("run", "--headless", "--db", str(db), "--config", str(bad))
    assert r.exit_code == 2 and "malformed TOML" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    typo = tmp_path / "typo.toml"
    typo.write_text('tasks = ["synth-cxr-a"]\nepoch = 2\n')
    r = invoke("run", "--headless", "--db", str(db), "--config", str(typo))
    assert r.exit_code == 2 and "unknown key 'epoch'" in r.stderr and "epochs" in r.stderr
    assert count_runs(db) == 0


def test_missing_medmnist_file_is_a_failed_record_not_a_traceback(tmp_path: Path, db: Path) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    r = invoke("run", "--headless", "--db", str(db), "--tasks", "dermamnist", "--data-dir", str(empty), "--device", "cpu")
    assert r.exit_code == 2
    assert "Traceback" not in r.output
    assert "dermamnist.npz" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    runs = json.loads(invoke("runs", "--json", "--db", str(db)).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "failed" and "dermamnist.npz" in runs[0]["error"]


def test_headless_run_show_runs_and_compare(tmp_path: Path, db: Path) -> None:
    r1 = invoke("run", "--headless", "--db", str(db), *FAST, "--name", "plain")
    assert r1.exit_code == 0, r1.output
    rid = int(r1.stdout.strip().splitlines()[0])
    r2 = invoke("run", "--headless", "--db", str(db), *FAST, "--buffer-size", "20", "--heldout", "synth-blood", "--json")
    assert r2.exit_code == 0, r2.output
    d2 = json.loads(r2.stdout)
    assert d2["buffer"]["budget"] == 20 and sum(d2["buffer"]["per_task"].values()) <= 20

    d1 = json.loads(invoke("show", str(rid), "--json", "--db", str(db)).stdout)
    for key in ("id", "name", "status", "paradigm", "config", "rows", "columns", "heldout", "matrix", "metrics", "buffer", "pid"):
        assert key in d1
    assert d1["status"] == "finished" and d1["name"] == "plain"
    assert d1["rows"] == ["zero-shot", "after synth-cxr-a", "after synth-derm"]
    assert d1["columns"] == ["synth-cxr-a", "synth-derm"]
    assert all(0 <= v <= 1 for row in d1["matrix"] for v in row)
    assert d1["config"]["lr"] == 1e-3 and d1["config"]["max_train"] == 64  # the resolved config is stored
    assert d1["buffer"] == {"budget": 0, "per_task": {}, "per_class": {}}

    listing = json.loads(invoke("runs", "--json", "--db", str(db)).stdout)
    assert [r["id"] for r in listing] == [d2["id"], rid]

    md = invoke("compare", str(rid), str(d2["id"]), "--format", "markdown", "--db", str(db))
    assert md.exit_code == 0 and "### Config differences" in md.stdout and "| buffer_size | 0 | 20 |" in md.stdout
    tex = invoke("compare", "plain", str(d2["id"]), "--format", "latex", "--db", str(db)).stdout
    assert r"\begin{tabular}" in tex and r"buffer\_size" in tex
    csv_out = invoke("compare", str(rid), str(d2["id"]), "--format", "csv", "--db", str(db)).stdout
    assert csv_out.splitlines()[0] == "run_id,run_name,kind,row,column,value"
    js = json.loads(invoke("compare", str(rid), str(d2["id"]), "--format", "json", "--db", str(db)).stdout)
    assert js["config_diff"]["buffer_size"] == [0, 20]
    table = invoke("compare", str(rid), str(d2["id"]), "--db", str(db))
    assert table.exit_code == 0 and "Metrics" in table.stdout
    bad = invoke("compare", str(rid), "999", "--db", str(db))
    assert bad.exit_code == 2 and "no run with id 999" in bad.stderr


def test_datasets_and_models_listings(tmp_path: Path) -> None:
    r = invoke("datasets", "--json", "--data-dir", str(tmp_path))
    assert r.exit_code == 0
    tasks = {t["name"]: t for t in json.loads(r.stdout)["tasks"]}
    synth = [n for n in tasks if n.startswith("synth-")]
    assert len(synth) >= 5 and tasks["synth-cxr-a"]["classes"] == tasks["synth-cxr-b"]["classes"]
    assert tasks["pneumoniamnist"]["available"] is False and tasks["pneumoniamnist"]["splits"] == {"train": 4708, "val": 524, "test": 624}
    assert "chestmnist" not in tasks
    m = invoke("models", "--json")
    assert m.exit_code == 0
    models = {x["name"]: x for x in json.loads(m.stdout)}
    assert models["medtui-tiny"]["tiny"] is True
    assert any(p["tag"] == "openai" and p["cached"] is False for p in models["ViT-B-16"]["pretrained"])


def test_commands_on_missing_store_or_unknown_run(db: Path) -> None:
    commands = (["show", "7"], ["logs", "7"], ["cancel", "7"], ["resume", "7"], ["delete", "7", "--yes"], ["compare", "1", "2"])
    for cmd in commands:
        r = invoke(*cmd, "--db", str(db))
        assert r.exit_code == 2 and "no store at" in r.stderr and "Traceback" not in r.output, cmd
    assert not db.exists(), "reading commands must not create a store"
    assert invoke("runs", "--db", str(db)).exit_code == 0 and not db.exists()
    from medtui.store.store import Store

    Store(db).close()
    for cmd in commands:
        r = invoke(*cmd, "--db", str(db))
        assert r.exit_code == 2 and "no run with id" in r.stderr and "Traceback" not in r.output, cmd
    r = invoke("resume", "--db", str(db))
    assert r.exit_code == 2 and "Missing argument" in r.stderr


def write_npz(path: Path, n: int = 40, labels_max: int = 1, drop: str | None = None) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for split, k in (("train", n), ("val", 8), ("test", 16)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (k, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, labels_max + 1, (k, 1)).astype(np.uint8)
    if drop:
        arrays.pop(drop)
    np.savez(path, **arrays)


def test_user_task_from_a_tasks_file(tmp_path: Path, db: Path) -> None:
    write_npz(tmp_path / "mine.npz")
    tasks = tmp_path / "tasks.toml"
    tasks.write_text('[[task]]\nname = "my-xray"\ndomain = "chest x-ray"\nformat = "npz"\npath = "mine.npz"\nclasses = ["normal", "abnormal"]\n')
    r = invoke("run", "--headless", "--json", "--db", str(db), "--tasks-file", str(tasks), "--tasks", "my-xray,synth-cxr-a",
               "--epochs", "1", "--max-train", "32", "--max-test", "16", "--device", "cpu")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["columns"] == ["my-xray", "synth-cxr-a"] and d["status"] == "finished"
    assert d["config"]["user_tasks"][0]["name"] == "my-xray"  # the declaration is stored with the run


def test_bad_user_npz_files(tmp_path: Path, db: Path) -> None:
    write_npz(tmp_path / "nokey.npz", drop="test_labels")
    write_npz(tmp_path / "range.npz", labels_max=4)
    # a missing key is seen before anything is stored; labels out of range once the data is read (a failed record)
    for name, file, needle, stored in (("a", "nokey.npz", "lacks key(s) test_labels", 0), ("b", "range.npz", "labels must be in 0..1", 1)):
        tasks = tmp_path / f"{name}.toml"
        tasks.write_text(f'[[task]]\nname = "{name}"\ndomain = "x"\nformat = "npz"\npath = "{file}"\nclasses = ["p", "q"]\n')
        r = invoke("run", "--headless", "--db", str(db), "--tasks-file", str(tasks), "--tasks", name, "--device", "cpu")
        assert r.exit_code == 2, r.output
        assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output
        assert count_runs(db) == stored


def test_output_into_a_closed_pipe_is_no_traceback(store_path: Path) -> None:
    """`medtui show 1 | head -1`: a reader that has gone away ends the command quietly."""
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write: every write gets EPIPE
    proc = subprocess.run(
        [sys.executable, "-m", "medtui", "--db", str(store_path), "show", "1"],
        stdout=w, stderr=subprocess.PIPE, timeout=120,
    )
    os.close(w)
    err = proc.stderr.decode()
    assert "Traceback" not in err and "Error" not in err, err
