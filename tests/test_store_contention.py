"""Write transactions under contention: a write that starts after a read must not fail at once in WAL."""
from __future__ import annotations
import sqlite3
from pathlib import Path
import pytest
from medtui.store.store import Store
from helpers import fast_config


def _contend_inside_transactions(store: Store, other: Store, run_id: int) -> list[str]:
    """Whenever ``store`` is inside a transaction and about to write, ``other`` commits a write first."""
    other.db.conn.execute("PRAGMA busy_timeout=0")
    state = {"in_tx": False, "fired": False}
    outcomes: list[str] = []

    def trace(sql: str) -> None:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head == "BEGIN":
            state["in_tx"], state["fired"] = True, False
        elif head in ("COMMIT", "ROLLBACK"):
            state["in_tx"] = False
        elif state["in_tx"] and not state["fired"] and head in ("INSERT", "UPDATE", "REPLACE", "DELETE", "CREATE", "DROP"):
            state["fired"] = True
            try:
                other.db.conn.execute("update runs set host = 'other' where id = ?", [run_id])
                outcomes.append("other wrote")
            except sqlite3.OperationalError as e:
                outcomes.append(f"other waited: {e}")

    store.db.conn.set_trace_callback(trace)
    return outcomes


def test_record_evaluation_survives_a_concurrent_writer(db: Path) -> None:
    store, other = Store(db), Store(db)
    rid = store.create_run(fast_config())
    store.get_run(rid)
    outcomes = _contend_inside_transactions(store, other, rid)
    store.record_evaluation(rid, {"row": 0, "row_label": "zero-shot", "task": "synth-cxr-a", "accuracy": 0.5, "auc": 0.5, "per_class": [0.5, 0.5], "n": 10})
    assert outcomes
    assert store.matrix(rid)["matrix"][0][0] == 0.5


def test_every_sink_write_survives_a_concurrent_writer(db: Path) -> None:
    from test_store import feed

    store, other = Store(db), Store(db)
    rid = store.create_run(fast_config(tasks=("a", "b"), heldout=("h",), buffer_size=10), status="running")
    outcomes = _contend_inside_transactions(store, other, rid)
    feed(store, rid)
    assert len(outcomes) > 10
    d = store.detail(rid)
    assert d["status"] == "finished" and d["matrix"][2] == [0.6, 0.8, 0.5]


def test_sink_retries_a_locked_write_and_logs_it(db: Path, caplog: pytest.LogCaptureFixture) -> None:
    from medtui.events import LogLine
    from medtui.store.sink import StoreSink

    store = Store(db)
    rid = store.create_run(fast_config())
    real_write, failures = store.write, [2]

    def flaky_write():  # the first two transactions find the store locked (as after a busy timeout)
        if failures[0]:
            failures[0] -= 1
            raise sqlite3.OperationalError("database is locked")
        return real_write()

    store.write = flaky_write  # type: ignore[method-assign]
    sink = StoreSink(store, rid, retries=3, backoff_s=0.01)
    with caplog.at_level("WARNING", logger="medtui.store"):
        sink(LogLine("info", "hello"))
    assert sink.retried == 2
    assert [e["message"] for e in store.events(rid)] == ["hello"]  # written once, not three times
    assert "store busy" in caplog.text and "retry 2/3" in caplog.text
    failures[0] = 5  # more than the retries allow: the error reaches the engine
    with pytest.raises(sqlite3.OperationalError):
        sink(LogLine("info", "lost"))


def test_opening_a_store_never_drops_the_locks_of_another_connection_in_the_process(db: Path) -> None:
    """Closing any descriptor of a database file drops all of a process's POSIX locks on it: a
    second Store opened (and closed) beside a live one must not let another process delete the -wal."""
    import subprocess
    import sys

    live = Store(db)
    rid = live.create_run(fast_config())
    Store(db).close()  # e.g. the heartbeat thread opening its own connection
    # another process opens and closes the store: were it the only lock holder, it would remove the -wal
    subprocess.run([sys.executable, "-c", f"import sqlite3; c = sqlite3.connect({str(db)!r}); c.execute('select count(*) from runs').fetchall(); c.close()"], check=True, timeout=60)
    assert Path(f"{db}-wal").exists()
    live.update_run(rid, host="still-visible")
    with Store(db) as reader:
        assert reader.get_run(rid)["host"] == "still-visible"
    live.close()
