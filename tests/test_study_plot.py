"""study plot: the three figure kinds, in every format, with labels, legends and values; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app
from medtui.store.store import Store
from medtui.study.aggregate import aggregate
from medtui.study.demo import seed_demo_study
from medtui.study.series import numeric_axes, series

runner = CliRunner()


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("medtui.jobs.queue.schedule", lambda path: [])
    db = tmp_path / "s.db"
    seed_demo_study(db, now=1_790_000_000)
    return db


def test_series_groups_lines_and_reference_levels(demo: Path) -> None:
    with Store(demo) as s:
        result = aggregate(s, "demo-sweep")
    assert numeric_axes(result) == ["buffer_size"]
    lines, refs = series(result, "last", "buffer_size")
    assert list(lines) == ["continual"] and [p[0] for p in lines["continual"]] == [0.0, 50.0, 200.0]
    cont = [c for c in result["cells"] if c["values"]["paradigm"] == "continual"]
    assert [p[1] for p in lines["continual"]] == [c["metrics"]["last"]["mean"] for c in cont]
    assert [p[2] for p in lines["continual"]] == [c["metrics"]["last"]["std"] for c in cont]
    joint = result["cells"][0]["metrics"]["last"]
    assert refs == {"joint": (joint["mean"], joint["std"])}


def test_plot_writes_three_kinds_with_labels(demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    r = runner.invoke(app, ["study", "plot", "demo-sweep", "--out", str(out), "--format", "svg", "--db", str(demo)])
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(Path(p).name for p in r.stdout.split())
    assert {"last-vs-buffer_size.svg", "forgetting-vs-buffer_size.svg", "bwt-vs-buffer_size.svg"} <= set(names)
    assert {"matrix-joint.svg", "matrix-continual-0.svg", "matrix-continual-200.svg", "stages-continual-50.svg"} <= set(names)
    assert "stages-joint.svg" not in names  # one stage: nothing to draw across stages
    metric = (out / "last-vs-buffer_size.svg").read_text()
    for text in ("buffer size (samples)", "final accuracy (%)", "demo-sweep: last vs buffer size", "continual", "joint (no buffer size)"):
        assert text in metric, text
    with Store(demo) as s:
        cell = aggregate(s, "demo-sweep")["cells"][1]
    heat = (out / "matrix-continual-0.svg").read_text()
    m, sd = cell["matrix_mean"][1][0], cell["matrix_std"][1][0]
    assert f"{100 * m:.0f}±{100 * sd:.0f}" in heat and "tested on" in heat and "after stage" in heat
    assert "paradigm continual, buffer size 0 (n = 3)" in heat
    stages = (out / "stages-continual-0.svg").read_text()
    assert "per-task accuracy across stages" in stages and "cxr-a" in stages and "0-shot" in stages


@pytest.mark.parametrize("fmt, magic", [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_plot_formats(demo: Path, tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / fmt
    r = runner.invoke(app, ["study", "plot", "demo-sweep", "--out", str(out), "--format", fmt, "--metrics", "last", "--db", str(demo)])
    assert r.exit_code == 0, r.output
    files = list(out.iterdir())
    assert files and all(p.read_bytes().startswith(magic) for p in files)
    assert not (out / "forgetting-vs-buffer_size.png").exists()


def test_plot_bad_input(demo: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    for args, needle in (
        (["--format", "gif"], "unknown figure format"),
        (["--metrics", "lst"], "unknown metric"),
    ):
        r = runner.invoke(app, ["study", "plot", "demo-sweep", "--out", str(tmp_path / "o"), *args, "--db", str(demo)])
        assert r.exit_code == 2 and needle in r.stderr
    r = runner.invoke(app, ["study", "plot", "demo-sweep", "--out", str(tmp_path / "file"), "--db", str(demo)])
    assert r.exit_code == 2 and "is a file" in r.stderr
    empty = tmp_path / "e.db"
    seed_demo_study(empty, finish=0)
    r = runner.invoke(app, ["study", "plot", "demo-sweep", "--out", str(tmp_path / "o2"), "--db", str(empty)])
    assert r.exit_code == 2 and "no finished run" in r.stderr
    assert json.loads(runner.invoke(app, ["studies", "--json", "--db", str(empty)]).stdout)[0]["status"] == {"queued": 12}
