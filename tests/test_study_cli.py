"""Study commands: bad input (exit 2, nothing stored), dry runs, aggregation by hand, exports, listing, delete."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import statistics
from pathlib import Path

import pytest
from helpers import finish_run
from typer.testing import CliRunner

from medtui.cli import app
from medtui.store.store import Store

runner = CliRunner()

BASE = """
epochs = 1
batch_size = 32
max_train = 48
max_test = 24
device = "cpu"
tasks = ["synth-cxr-a", "synth-derm"]
"""
STUDY = BASE + """
[study]
name = "agg"
seeds = [0, 1]
[study.grid]
paradigm = ["joint", "continual"]
buffer_size = [0, 20]
"""


def invoke(*args: str) -> object:
    return runner.invoke(app, list(args))


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def queue_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Queue runs without starting workers (the tests fill in results themselves)."""
    monkeypatch.setattr("medtui.jobs.queue.schedule", lambda path: [])


@pytest.mark.parametrize(
    "grid, needle",
    [
        ("nope = [1]", "unknown grid key 'nope'"),
        ("buffer_size = []", "is empty"),
        ("epochs = [0]", "epochs must be > 0"),
        ("tasks = [[\"synth-x\"]]", "unknown task 'synth-x'"),
    ],
)
def test_bad_study_is_one_line_exit_2_nothing_stored(tmp_path: Path, grid: str, needle: str) -> None:
    f = write(tmp_path, BASE + f'[study]\nname = "bad"\n[study.grid]\n{grid}\n')
    r = invoke("study", "run", str(f), "--db", str(tmp_path / "s.db"))
    assert r.exit_code == 2, r.output
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s.db").exists()


def test_dry_run_json_stores_nothing(tmp_path: Path) -> None:
    f = write(tmp_path, STUDY)
    r = invoke("study", "run", str(f), "--dry-run", "--json", "--db", str(tmp_path / "s.db"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["study"] == "agg" and out["runs"] == 6
    assert [c["values"] for c in out["cells"]] == [
        {"paradigm": "joint", "buffer_size": None},
        {"paradigm": "continual", "buffer_size": 0},
        {"paradigm": "continual", "buffer_size": 20},
    ]
    assert [c["n"] for c in out["cells"]] == [2, 2, 2]
    assert not (tmp_path / "s.db").exists()
    text = invoke("study", "run", str(f), "--dry-run", "--db", str(tmp_path / "s.db"))
    assert "3 cells, 6 runs" in text.stdout


def test_name_reused_with_other_spec_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    queue_only(monkeypatch)
    db = str(tmp_path / "s.db")
    assert invoke("study", "run", str(write(tmp_path, STUDY)), "--db", db).exit_code == 0
    other = write(tmp_path, STUDY.replace("seeds = [0, 1]", "seeds = [5]"), "other.toml")
    r = invoke("study", "run", str(other), "--db", db)
    assert r.exit_code == 2 and "already exists with a different spec" in r.stderr
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from runs").fetchone()[0] == 6
    assert invoke("study", "run", str(other), "--db", db, "--force").exit_code == 0
    with sqlite3.connect(db) as c:
        assert c.execute("select count(*) from runs").fetchone()[0] == 9


JOINT = [[[0.5, 0.5], [0.9, 0.7]], [[0.5, 0.5], [0.7, 0.5]]]
CONT0 = [[[0.5, 0.5], [0.9, 0.5], [0.6, 0.8]], [[0.5, 0.5], [0.8, 0.5], [0.4, 0.9]]]


def _stored_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[int]]:
    """The 'agg' study with joint and continual/0 finished by hand, continual/20 one run finished, one queued."""
    queue_only(monkeypatch)
    db = str(tmp_path / "s.db")
    assert invoke("study", "run", str(write(tmp_path, STUDY)), "--db", db).exit_code == 0
    with Store(db) as s:
        ids = sorted(s.iter_ids())
        for rid, m in zip(ids[:4], JOINT + CONT0):
            finish_run(s, rid, m)
        finish_run(s, ids[4], CONT0[0])
    return db, ids


def test_show_json_by_hand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, ids = _stored_study(tmp_path, monkeypatch)
    r = invoke("study", "show", "agg", "--json", "--db", db)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["study"] == "agg" and out["runs"] == 6
    joint, c0, c20 = out["cells"]
    assert joint["values"] == {"paradigm": "joint", "buffer_size": None} and joint["n"] == 2 and joint["run_ids"] == ids[:2]
    # joint last = mean of row 1: 0.8 and 0.6 -> mean 0.7, sample std sqrt(0.02) = 0.1414
    assert joint["metrics"]["last"]["mean"] == pytest.approx(0.7)
    assert joint["metrics"]["last"]["std"] == pytest.approx(math.sqrt(0.02))
    assert joint["metrics"]["last"]["n"] == 2
    assert joint["matrix_mean"] == [[0.5, 0.5], [pytest.approx(0.8), pytest.approx(0.6)]]
    assert joint["matrix_std"][1] == [pytest.approx(math.sqrt(0.02)), pytest.approx(math.sqrt(0.02))]
    assert joint["matrix_std"][0] == [0.0, 0.0]
    # continual: last = (0.6+0.8)/2 = 0.7 and (0.4+0.9)/2 = 0.65; bwt = 0.6-0.9 = -0.3 and 0.4-0.8 = -0.4
    assert c0["metrics"]["last"]["mean"] == pytest.approx(0.675)
    assert c0["metrics"]["last"]["std"] == pytest.approx(statistics.stdev([0.7, 0.65]))
    assert c0["metrics"]["bwt"]["mean"] == pytest.approx(-0.35)
    assert c0["metrics"]["forgetting"]["mean"] == pytest.approx(0.35)
    assert c0["rows"] == ["zero-shot", "after synth-cxr-a", "after synth-derm"] and c0["columns"] == ["synth-cxr-a", "synth-derm"]
    # the incomplete cell says so; n = 1 has no std
    assert c20["n"] == 1 and c20["planned"] == 2 and not c20["complete"] and c20["status"] == {"finished": 1, "queued": 1}
    assert c20["metrics"]["last"]["std"] is None and c20["matrix_std"][2] == [None, None]


def test_show_matches_recomputation_from_each_runs_show_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = _stored_study(tmp_path, monkeypatch)
    out = json.loads(invoke("study", "show", "agg", "--json", "--db", db).stdout)
    for cell in out["cells"]:
        details = [json.loads(invoke("show", str(rid), "--json", "--db", db).stdout) for rid in cell["run_ids"]]
        assert all(d["status"] == "finished" for d in details)
        for name, s in cell["metrics"].items():
            xs = [d["metrics"][name] for d in details if d["metrics"].get(name) is not None]
            assert s["n"] == len(xs)
            if xs:
                assert s["mean"] == pytest.approx(statistics.fmean(xs))
            assert s["std"] == (pytest.approx(statistics.stdev(xs)) if len(xs) > 1 else None)
        for i, row in enumerate(cell["matrix_mean"]):
            for j, v in enumerate(row):
                assert v == pytest.approx(statistics.fmean(d["matrix"][i][j] for d in details))


def test_formats_and_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, _ = _stored_study(tmp_path, monkeypatch)
    table = invoke("study", "show", "agg", "--db", db, "--metrics", "last,bwt", "--matrices")
    assert table.exit_code == 0 and "70.0 ± 14.1" in table.stdout and "1/2" in table.stdout
    md = invoke("study", "show", "agg", "--db", db, "--format", "markdown").stdout
    assert "| paradigm | buffer_size | n |" in md and "| joint | — | 2 | 70.0 ± 14.1 |" in md
    tex = invoke("study", "show", "agg", "--db", db, "--format", "latex", "--metrics", "last,forgetting").stdout
    assert tex.count(r"\toprule") == 1 and r"\midrule" in tex and r"\bottomrule" in tex
    assert tex.isascii()  # compiles without inputenc tricks: no ± or — left unescaped
    rows = [line for line in tex.splitlines() if line.endswith(r"\\") and "midrule" not in line]
    assert len(rows) == 4 and all(line.count("&") == 4 for line in rows)
    # best last: joint/continual-0 at 70.0 / 67.5 vs continual-20 at 70.0 (one run) -> ties are bold; best forgetting lowest
    assert re.search(r"joint & -- & 2 & \$\\mathbf\{70\.0 \\pm 14\.1\}\$", tex)
    assert r"\mathbf{30.0}" in tex  # the one-run cell forgets 0.3, the least
    csv_text = invoke("study", "show", "agg", "--db", db, "--format", "csv").stdout
    assert csv_text.splitlines()[0] == "paradigm,buffer_size,kind,name,column,mean,std,n,planned"
    assert "joint,,metric,last,,0.700000,0.141421,2,2" in csv_text
    listing = json.loads(invoke("studies", "--json", "--db", db).stdout)
    assert listing[0]["name"] == "agg" and listing[0]["runs"] == 6 and listing[0]["status"] == {"finished": 5, "queued": 1}
    assert "5/6" in invoke("studies", "--db", db).stdout
    assert invoke("study", "show", "nope", "--db", db).exit_code == 2
    assert invoke("study", "show", "agg", "--db", db, "--format", "xml").exit_code == 2
    assert invoke("study", "show", "agg", "--db", db, "--metrics", "lst").exit_code == 2


def test_cancel_and_delete_ask_and_can_keep_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db, ids = _stored_study(tmp_path, monkeypatch)
    r = invoke("study", "cancel", "agg", "--db", db)
    assert r.exit_code == 0 and "1 run(s)" in r.stderr
    with Store(db) as s:
        assert s.get_run(ids[5])["status"] == "cancelled"
    refused = runner.invoke(app, ["study", "delete", "agg", "--db", db], input="n\n")
    assert refused.exit_code != 0
    assert invoke("study", "delete", "agg", "--keep-runs", "--yes", "--db", db).exit_code == 0
    with Store(db) as s:
        assert sorted(s.iter_ids()) == ids and s.get_run(ids[0])["study_id"] is None
    assert json.loads(invoke("studies", "--json", "--db", db).stdout) == []
    # a new study then deleted with its runs
    assert invoke("study", "run", str(write(tmp_path, STUDY)), "--db", db).exit_code == 0
    assert invoke("study", "delete", "agg", "--yes", "--db", db).exit_code == 0
    with Store(db) as s:
        assert sorted(s.iter_ids()) == ids


def test_help_of_study_commands() -> None:
    for cmd in (["study", "run"], ["study", "show"], ["study", "cancel"], ["study", "delete"], ["studies"]):
        r = invoke(*cmd, "--help")
        assert r.exit_code == 0 and "Usage:" in r.stdout


@pytest.mark.slow
def test_headless_study_end_to_end_and_resume(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    f = write(tmp_path, BASE.replace("max_train = 48", "max_train = 32") + """
[study]
name = "e2e"
seeds = [0]
[study.grid]
paradigm = ["joint", "continual"]
""")
    r = invoke("study", "run", str(f), "--headless", "--json", "--max-parallel", "2", "--db", db)
    assert r.exit_code == 0, r.output
    assert re.search(r"\[2/2\] run \d+ e2e/\w+/s0 finished", r.stderr)
    out = json.loads(r.stdout)
    assert [c["n"] for c in out["cells"]] == [1, 1]
    for cell in out["cells"]:
        d = json.loads(invoke("show", str(cell["run_ids"][0]), "--json", "--db", db).stdout)
        assert cell["matrix_mean"] == d["matrix"]
        assert {k: v["mean"] for k, v in cell["metrics"].items()} == {k: d["metrics"].get(k) for k in cell["metrics"]}
    again = invoke("study", "run", str(f), "--headless", "--db", db)
    assert again.exit_code == 0 and "0 added, 0 resumed, 2 finished kept" in again.stderr


@pytest.mark.skipif(__import__("shutil").which("pdflatex") is None, reason="pdflatex is not installed (the structure is checked in test_formats_and_listing)")
def test_latex_table_compiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    db, _ = _stored_study(tmp_path, monkeypatch)
    tex = invoke("study", "show", "agg", "--db", db, "--format", "latex").stdout
    doc = tmp_path / "t.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + tex + "\\end{document}\n")
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]
    assert (tmp_path / "t.pdf").is_file()
