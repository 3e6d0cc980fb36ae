"""The SQLite store: schema, WAL, runs, evaluations and metrics, sink, delete, errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from medtui.errors import StoreError
from medtui.events import BufferUpdated, LogLine, RunFinished, RunStarted, StageFinished, StageStarted, StepLogged, TaskEvaluated
from medtui.store.db import MIGRATIONS, connect
from medtui.store.sink import StoreSink
from medtui.store.store import Store
from helpers import fast_config


def test_schema_is_versioned_and_wal(db: Path) -> None:
    s = Store(db)
    assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert s.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"runs", "evaluations", "steps", "events", "buffer", "checkpoints", "settings"} <= set(s.db.table_names())
    s.close()
    # reopening does not migrate again or lose data
    s = Store(db)
    rid = s.create_run(fast_config())
    s.close()
    assert Store(db).get_run(rid)["id"] == rid


def test_newer_schema_and_garbage_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        connect(newer)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a medtui store"):
        connect(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100


def feed(store: Store, run_id: int) -> None:
    sink = StoreSink(store, run_id)
    sink(RunStarted(["zero-shot", "after a", "after b"], ["a", "b", "h"], ["h"], "cpu", "random", {"a": "1", "b": "2", "h": "3"}, 10, 5))
    for row, accs in enumerate([[0.5, 0.5, 0.4], [0.9, 0.5, 0.45], [0.6, 0.8, 0.5]]):
        if row:
            sink(StageStarted(row, f"after {'ab'[row - 1]}", ["ab"[row - 1]], 10, 100))
            sink(StepLogged(row, 10, 10, 1, 0.3, 1e-3, 250.0))
        for task, acc in zip("abh", accs):
            sink(TaskEvaluated(row, "x", task, acc, 0.7, [acc, acc], 50))
        if row:
            sink(BufferUpdated(row, 10, {"a": 10} if row == 1 else {"a": 5, "b": 5}, {"a": [5, 5]}, {"a": list(range(10))}))
        sink(StageFinished(row, None, 1.0))
    sink(LogLine("info", "hello"))
    sink(RunFinished("finished"))


def test_sink_builds_matrix_metrics_buffer_and_log(db: Path) -> None:
    store = Store(db)
    cfg = fast_config(tasks=("a", "b"), heldout=("h",), buffer_size=10)
    rid = store.create_run(cfg, status="running")
    feed(store, rid)
    d = store.detail(rid)
    assert d["status"] == "finished" and d["pid"] is None
    assert d["rows"] == ["zero-shot", "after a", "after b"] and d["columns"] == ["a", "b", "h"] and d["heldout"] == ["h"]
    assert d["matrix"] == [[0.5, 0.5, 0.4], [0.9, 0.5, 0.45], [0.6, 0.8, 0.5]]
    assert d["metrics"]["last"] == pytest.approx((0.6 + 0.8) / 2)
    assert d["metrics"]["bwt"] == pytest.approx(0.6 - 0.9)
    assert d["metrics"]["heldout"] == pytest.approx(0.5)
    assert d["buffer"] == {"budget": 10, "per_task": {"a": 5, "b": 5}, "per_class": {"a": [5, 5], "b": []}}
    assert len(store.steps(rid)) == 2
    assert any(e["message"] == "hello" for e in store.events(rid))
    assert store.get_run(rid)["last_stage"] == 2


def test_partial_matrix_has_nulls_and_upserts(db: Path) -> None:
    store = Store(db)
    rid = store.create_run(fast_config(tasks=("a", "b")))
    store.record_evaluation(rid, {"row": 0, "row_label": "zero-shot", "task": "a", "accuracy": 0.5, "auc": None, "per_class": [0.5], "n": 4})
    store.record_evaluation(rid, {"row": 0, "row_label": "zero-shot", "task": "a", "accuracy": 0.75, "auc": None, "per_class": [0.5], "n": 4})
    m = store.matrix(rid)["matrix"]
    assert m == [[0.75, None], [None, None], [None, None]]
    assert store.get_run(rid)["metrics"]["zero_shot"] == pytest.approx(0.75)


def test_refs_delete_and_unknown_runs(db: Path) -> None:
    store = Store(db)
    a = store.create_run(fast_config(name="alpha"))
    b = store.create_run(fast_config(name="beta"))
    assert store.resolve_ref("alpha") == a and store.resolve_ref(str(b)) == b
    feed(store, b)
    store.delete_run(b)
    assert [r["id"] for r in store.list_runs()] == [a]
    assert store.db.execute("select count(*) from evaluations").fetchone()[0] == 0
    with pytest.raises(StoreError, match="no run"):
        store.get_run(b)
    with pytest.raises(StoreError, match="gamma"):
        store.resolve_ref("gamma")


def test_config_roundtrip_through_store(db: Path) -> None:
    store = Store(db)
    cfg = fast_config(heldout=("synth-blood",), buffer_size=30, name="x")
    rid = store.create_run(cfg)
    assert store.config(rid) == cfg
