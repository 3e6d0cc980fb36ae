"""``--db``: the global and the per-command option name the same store, for every command; bad stores are one-line errors."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app
from medtui.store.db import MIGRATIONS
from medtui.store.demo import seed_demo_runs

runner = CliRunner()
TINY = ["--tasks", "synth-cxr-a", "--epochs", "1", "--max-train", "32", "--max-test", "16", "--device", "cpu"]

#: Every command that takes --db, with arguments that exercise it without training.
COMMANDS: list[list[str]] = [
    ["runs", "--json"],
    ["show", "1", "--json"],
    ["compare", "1", "2", "--format", "csv"],
    ["logs", "1"],
    ["queue", "--json"],
    ["cancel", "3"],
    ["delete", "2", "--yes"],
    ["resume", "1"],
    ["run", "--queue", *TINY],
]


def sql(path: Path, *statements: str) -> list[tuple]:
    """Run statements on a store and close it (an open connection would write the file later)."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as c:
        rows: list[tuple] = []
        for st in statements:
            rows = c.execute(st).fetchall()
        return rows


def seeded(path: Path, like: Path | None = None) -> Path:
    if like is not None:
        shutil.copy(like, path)
        return path
    seed_demo_runs(path, 3, now=1_790_000_000)
    # run 3 holds the only slot, so `run --queue` waits instead of training
    sql(path, "update runs set status = 'running', pid = null, heartbeat_at = strftime('%s','now') + 0.0 where id = 3",
        "insert into settings (key, value) values ('max_parallel', '1')")
    return path


def snapshot(path: Path) -> list[tuple]:
    return sql(path, "select id, name, status, cancel_requested from runs order by id")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_global_and_command_db_are_the_same_store(tmp_path: Path, command: list[str]) -> None:
    g = seeded(tmp_path / "g.db")
    c = seeded(tmp_path / "c.db", like=g)
    before = snapshot(g)
    rg = runner.invoke(app, ["--db", str(g), *command])
    rc = runner.invoke(app, [*command, "--db", str(c)])
    assert not (tmp_path / "experiments.db").exists(), "the default store must not be used"
    assert rg.exit_code == rc.exit_code, (rg.output, rc.output)
    assert rg.stdout.replace("g.db", "X") == rc.stdout.replace("c.db", "X")
    assert snapshot(g) == snapshot(c)
    if command[0] in ("runs", "show", "compare"):
        assert rg.exit_code == 0 and "demo-1" in rg.stdout
    if command[0] in ("cancel", "delete", "run"):
        assert rg.exit_code == 0 and snapshot(g) != before, rg.output


def test_two_different_stores_named_is_an_error(tmp_path: Path) -> None:
    a, b = seeded(tmp_path / "a.db"), seeded(tmp_path / "b.db")
    r = runner.invoke(app, ["--db", str(a), "runs", "--db", str(b)])
    assert r.exit_code == 2 and "two different stores" in r.stderr
    assert runner.invoke(app, ["--db", str(a), "runs", "--db", str(a)]).exit_code == 0


def test_serve_serves_the_named_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import textual_serve.server

    seen: list[str] = []

    class FakeServer:
        def __init__(self, command: str, **kw: object) -> None:
            seen.append(command)

        def serve(self) -> None:
            pass

    monkeypatch.setattr(textual_serve.server, "Server", FakeServer)
    store = seeded(tmp_path / "s.db")
    assert runner.invoke(app, ["--db", str(store), "serve"]).exit_code == 0
    assert str(store.resolve()) in seen[0]


def one_line_error(result: object, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medtui: error:"), result.stderr
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0], lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("where", ["global", "command"])
@pytest.mark.parametrize("command", [["runs"], ["show", "1"], ["queue"], ["run", "--queue", *TINY], ["cancel", "1"]], ids=lambda c: c[0])
def test_missing_folder_and_directory_are_errors(tmp_path: Path, command: list[str], where: str) -> None:
    for bad, words in ((tmp_path / "nowhere" / "x.db", ("does not exist",)), (tmp_path, ("is a directory",))):
        before = listing(tmp_path)
        args = ["--db", str(bad), *command] if where == "global" else [*command, "--db", str(bad)]
        one_line_error(runner.invoke(app, args), *words)
        assert listing(tmp_path) == before and not (tmp_path / "nowhere").exists()


def read_only(path: Path) -> None:
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def test_read_only_store_reads_but_refuses_writes(tmp_path: Path) -> None:
    store = seeded(tmp_path / "ro.db")
    read_only(store)
    data = store.read_bytes()
    for command in (["runs", "--json"], ["show", "1"], ["compare", "1", "2"], ["queue"], ["logs", "1", "-n", "1"]):
        r = runner.invoke(app, [*command, "--db", str(store)])
        assert r.exit_code in (0, 2) and "read-only" not in r.output, (command, r.output)
        if command[0] != "logs":
            assert r.exit_code == 0, (command, r.output)
    assert "demo-2" in runner.invoke(app, ["runs", "--db", str(store)]).stdout
    for command in (["cancel", "3"], ["delete", "1", "--yes"], ["resume", "1"], ["run", "--queue", *TINY], ["queue", "--max-parallel", "2"]):
        one_line_error(runner.invoke(app, [*command, "--db", str(store)]), "read-only")
    assert store.read_bytes() == data
    assert listing(tmp_path) == ["ro.db"]


def test_read_only_store_is_not_switched_to_wal_or_migrated(tmp_path: Path) -> None:
    store = seeded(tmp_path / "legacy.db")
    sql(store, "PRAGMA journal_mode=DELETE")
    read_only(store)
    data = store.read_bytes()
    assert data[18] == 1  # rollback journal, not WAL
    r = runner.invoke(app, ["runs", "--json", "--db", str(store)])
    assert r.exit_code == 0 and "demo-3" in r.stdout
    assert store.read_bytes() == data


@pytest.mark.parametrize("command", [["runs"], ["show", "1"], ["run", "--queue", *TINY], ["cancel", "1"], ["queue"]], ids=lambda c: c[0])
def test_corrupt_and_newer_stores_are_errors_and_left_as_they_were(tmp_path: Path, command: list[str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all\n" * 200)
    newer = seeded(tmp_path / "newer.db")
    sql(newer, f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    damaged = seeded(tmp_path / "damaged.db")
    raw = bytearray(damaged.read_bytes())
    raw[4096 : 4096 * 3] = b"\xff" * (4096 * 2)  # pages past the header overwritten
    damaged.write_bytes(bytes(raw))
    for path, word in ((junk, "not a medtui store"), (newer, "newer than this medtui"), (damaged, "")):
        before, files = path.read_bytes(), listing(tmp_path)
        one_line_error(runner.invoke(app, [*command, "--db", str(path)]), word)
        assert path.read_bytes() == before and listing(tmp_path) == files


def test_another_apps_sqlite_file_is_not_taken_over(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sql(other, "create table notes (x text)")
    before = other.read_bytes()
    one_line_error(runner.invoke(app, ["run", "--queue", *TINY, "--db", str(other)]), "not a medtui store")
    assert other.read_bytes() == before


def test_read_only_store_of_an_older_schema_is_read_through_a_migrated_copy(tmp_path: Path) -> None:
    from medtui.store.db import MIGRATIONS, connect

    old = tmp_path / "old.db"
    db = connect(old)  # a version-1 store: only the first migration, one finished run
    for t in list(db.table_names()):
        db.conn.execute(f"drop table {t}")
    db.conn.execute("PRAGMA user_version=0")
    MIGRATIONS[0](db)
    db.conn.execute("PRAGMA user_version=1")
    import json

    from medtui.config import RunConfig

    config = json.dumps(RunConfig(tasks=("synth-derm",), paradigm="joint", name="old run").to_dict())
    db.conn.execute(
        "insert into runs (id, name, status, paradigm, config, created_at, tasks, heldout, rows, metrics) "
        "values (7, 'old run', 'finished', 'joint', ?, 1.0, '[\"synth-derm\"]', '[]', '[\"zero-shot\", \"joint\"]', '{\"last\": 0.5}')",
        [config],
    )
    db.conn.execute("insert into evaluations (run_id, row, task, accuracy) values (7, 1, 'synth-derm', 0.5)")
    db.conn.execute("PRAGMA journal_mode=DELETE")
    db.close()
    read_only(old)
    data = old.read_bytes()
    r = runner.invoke(app, ["runs", "--json", "--db", str(old)])
    assert r.exit_code == 0 and "old run" in r.stdout, r.output
    r = runner.invoke(app, ["show", "7", "--db", str(old)])
    assert r.exit_code == 0 and "50.0" in r.stdout, r.output
    one_line_error(runner.invoke(app, ["delete", "7", "--yes", "--db", str(old)]), "read-only")
    assert old.read_bytes() == data and listing(tmp_path) == ["old.db"]
    assert sql(old, "PRAGMA user_version") == [(1,)]
