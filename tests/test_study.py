"""Studies: spec parsing, expansion (collapsing axes, orders), bad input, store migration, submission and resume."""

from __future__ import annotations

import json
import sqlite3
import tomllib
from pathlib import Path

import pytest
from helpers import finish_run

from medtui.errors import ConfigError, UsageError
from medtui.store.store import Store
from medtui.study.expand import expand
from medtui.study.spec import from_json, parse_study
from medtui.study.store import get_study, list_studies, study_runs, submit

BASE = """
epochs = 1
batch_size = 32
max_train = 48
max_test = 24
device = "cpu"
tasks = ["synth-cxr-a", "synth-derm", "synth-histo"]
"""


def spec_of(study: str, base: str = BASE) -> object:
    return parse_study(tomllib.loads(base + study))


def test_grid_collapses_axes_that_do_not_apply() -> None:
    plan = expand(spec_of("""
[study]
name = "sweep"
seeds = [0, 1, 2]
[study.grid]
paradigm = ["specialized", "joint", "continual"]
buffer_size = [0, 100, 500]
"""))
    # specialized and joint ignore the buffer: one cell each, not three
    assert [c.values for c in plan.cells] == [
        {"paradigm": "specialized", "buffer_size": None},
        {"paradigm": "joint", "buffer_size": None},
        {"paradigm": "continual", "buffer_size": 0},
        {"paradigm": "continual", "buffer_size": 100},
        {"paradigm": "continual", "buffer_size": 500},
    ]
    assert len(plan.runs) == 5 * 3
    assert len({r.key for r in plan.runs}) == len(plan.runs)
    assert all(r.config.buffer_size == 0 for r in plan.runs if r.config.paradigm != "continual")
    assert sorted({r.config.seed for r in plan.runs}) == [0, 1, 2]
    assert plan.varying == ["paradigm", "buffer_size"]


def test_orders_count_and_lists_apply_to_continual_only() -> None:
    plan = expand(spec_of("""
[study]
name = "orders"
seeds = [0]
[study.grid]
paradigm = ["joint", "continual"]
[study.orders]
count = 3
"""))
    joint = [r for r in plan.runs if r.config.paradigm == "joint"]
    cont = [r for r in plan.runs if r.config.paradigm == "continual"]
    assert len(joint) == 1 and len(cont) == 3
    orders = [r.config.tasks for r in cont]
    assert orders[0] == ("synth-cxr-a", "synth-derm", "synth-histo")
    assert len(set(orders)) == 3 and all(sorted(o) == sorted(orders[0]) for o in orders)
    # seeded: the same spec always gives the same permutations
    again = expand(spec_of("""
[study]
name = "orders"
seeds = [0]
[study.grid]
paradigm = ["joint", "continual"]
[study.orders]
count = 3
"""))
    assert [r.config.tasks for r in again.runs] == [r.config.tasks for r in plan.runs]
    listed = expand(spec_of("""
[study]
name = "lists"
[study.orders]
lists = [["synth-histo", "synth-derm", "synth-cxr-a"], ["synth-derm", "synth-cxr-a", "synth-histo"]]
"""))
    assert [r.config.tasks for r in listed.runs] == [("synth-histo", "synth-derm", "synth-cxr-a"), ("synth-derm", "synth-cxr-a", "synth-histo")]


def test_any_run_config_key_is_an_axis_and_spec_round_trips() -> None:
    spec = spec_of("""
[study]
name = "shots"
seeds = [3]
[study.grid]
shots = [1, 4, 0]
tune = ["full", "head"]
""")
    plan = expand(spec)
    assert len(plan.cells) == 6
    assert {(r.config.shots, r.config.tune) for r in plan.runs} == {(s, t) for s in (1, 4, 0) for t in ("full", "head")}
    assert from_json(json.loads(spec.canonical())).canonical() == spec.canonical()


@pytest.mark.parametrize(
    "study, needle",
    [
        ('[study]\nname = "x"\n[study.grid]\nbufer_size = [1]', "unknown grid key 'bufer_size' (did you mean buffer_size"),
        ('[study]\nname = "x"\n[study.grid]\nbuffer_size = []', "grid axis 'buffer_size' is empty"),
        ('[study]\nname = "x"\n[study.grid]\nbuffer_size = [-5]', "buffer size must be >= 0"),
        ('[study]\nname = "x"\n[study.grid]\nparadigm = ["sequential"]', "unknown paradigm"),
        ('[study]\nname = "x"\n[study.grid]\nepochs = ["two"]', "'epochs' must be an integer"),
        ('[study]\nname = "x"\n[study.grid]\nshots = [-1]', "shots must be >= 0"),
        ('[study]\nname = "x"\n[study.grid]\nseed = [1, 2]', "use study.seeds"),
        ('[study]\nname = "x"\n[study.grid]\nepochs = 3', "must be a list of values"),
        ('[study]\nname = "x"\nseeds = []', "study.seeds must be a non-empty list"),
        ('[study]\nname = "x"\n[study.orders]\ncount = 7', "exceeds the 6 orders of 3 tasks"),
        ('[study]\nname = "x"\n[study.orders]\nlists = [["synth-derm"]]', "is not a permutation"),
        ('[study]\nname = "x"\nsedes = [1]', "unknown key study.sedes"),
        ('[study]\nseeds = [1]', "study.name must be a non-empty string"),
        ('[study]\nname = "123"', "not all digits"),
        ('', "no [study] table"),
    ],
)
def test_bad_specs_are_one_line_errors(study: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        spec_of(study)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_task_in_a_cell_names_the_cell() -> None:
    spec = spec_of('[study]\nname = "x"\n[study.grid]\ntasks = [["synth-derm"], ["synth-nope"]]')
    with pytest.raises(UsageError, match=r"cell tasks=\['synth-nope'\]: unknown task 'synth-nope'"):
        expand(spec)


def test_migration_keeps_runs_of_an_older_store(tmp_path: Path) -> None:
    from medtui.store.db import MIGRATIONS, connect

    old = tmp_path / "old.db"
    db = connect(old)  # build a version-1 store: only the first migration
    db.conn.execute("PRAGMA user_version=0")
    for t in list(db.table_names()):
        db.conn.execute(f"drop table {t}")
    MIGRATIONS[0](db)
    db.conn.execute("PRAGMA user_version=1")
    db.conn.execute(
        "insert into runs (id, name, status, paradigm, config, created_at, tasks, heldout, rows, metrics) "
        "values (7, 'old run', 'finished', 'joint', '{}', 1.0, '[\"synth-derm\"]', '[]', '[\"zero-shot\", \"joint\"]', '{\"last\": 0.5}')"
    )
    db.conn.execute("insert into evaluations (run_id, row, task, accuracy) values (7, 1, 'synth-derm', 0.5)")
    db.close()
    with Store(old) as s:
        assert s.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        run = s.get_run(7)
        assert run["name"] == "old run" and run["metrics"] == {"last": 0.5} and run["study_id"] is None
        assert s.matrix(7)["matrix"][1] == [0.5]
        assert "studies" in s.db.table_names()
        assert list_studies(s) == []


STUDY = BASE + """
[study]
name = "resume"
seeds = [0, 1]
[study.grid]
paradigm = ["joint", "continual"]
"""


def test_submission_resumes_a_half_finished_study(db: Path) -> None:
    plan = expand(parse_study(tomllib.loads(STUDY)))
    with Store(db) as s:
        sub = submit(s, plan)
        assert sub.created and len(sub.added) == 4
        a, b, c, d = sub.added
        finish_run(s, a, [[0.5, 0.5, 0.5], [0.9, 0.8, 0.7]])
        s.update_run(b, status="failed", error="killed")
        s.update_run(c, status="cancelled")
        s.delete_run(d)
        again = submit(s, plan)
        assert not again.created and again.study_id == sub.study_id
        assert again.kept == [a] and sorted(again.resumed) == [b, c] and len(again.added) == 1
        assert s.get_run(b)["status"] == "queued" and s.get_run(b)["error"] is None
        assert s.get_run(a)["status"] == "finished"
        runs = study_runs(s, sub.study_id)
        assert len(runs) == 4 and len({r["study_key"] for r in runs}) == 4
        # a third submission changes nothing
        third = submit(s, plan)
        assert not third.added and not third.resumed and third.kept == [a]


def test_name_reused_with_another_spec_is_refused_unless_forced(db: Path) -> None:
    plan = expand(parse_study(tomllib.loads(STUDY)))
    other = expand(parse_study(tomllib.loads(STUDY.replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))))
    with Store(db) as s:
        submit(s, plan)
        before = s.db.execute("select count(*) from runs").fetchone()[0]
        with pytest.raises(ConfigError, match="already exists with a different spec \\(seeds\\); --force"):
            submit(s, other)
        assert s.db.execute("select count(*) from runs").fetchone()[0] == before
        forced = submit(s, other, force=True)
        assert len(forced.added) == 2 and len(forced.active) == 4
        assert get_study(s, "resume")["spec"]["seeds"] == [0, 1, 2]


def test_shots_keeps_k_per_class_seeded() -> None:
    from medtui.data.registry import TaskRegistry

    reg = TaskRegistry()
    full = reg.load("synth-blood")
    a = reg.load("synth-blood", shots=4, seed=1)
    b = reg.load("synth-blood", shots=4, seed=1)
    c = reg.load("synth-blood", shots=4, seed=2)
    counts = a.counts()["train"]
    assert counts == [4] * len(counts)
    assert (a.splits["train"].images == b.splits["train"].images).all()
    assert not (a.splits["train"].images == c.splits["train"].images).all()
    assert len(a.splits["test"]) == len(full.splits["test"])  # test splits stay whole
    assert reg.load("synth-blood", shots=0).counts()["train"] == full.counts()["train"]
    big = reg.load("synth-blood", shots=10**6)
    assert big.counts()["train"] == full.counts()["train"]


def test_method_and_lora_axes_collapse_where_they_do_not_apply() -> None:
    plan = expand(spec_of("""
[study]
name = "methods"
[study.grid]
paradigm = ["joint", "continual"]
method = ["naive", "lwf"]
tune = ["full", "lora"]
lora_rank = [4, 8]
"""))
    values = [c.values for c in plan.cells]
    # joint: no method; full tuning: no LoRA rank -> 3 joint cells, 6 continual cells instead of 16
    assert len(values) == 9
    assert {"paradigm": "joint", "method": None, "tune": "full", "lora_rank": None} in values
    assert {"paradigm": "continual", "method": "lwf", "tune": "lora", "lora_rank": 8} in values
    assert all(r.config.method == "naive" for r in plan.runs if r.config.paradigm == "joint")
    with pytest.raises(ConfigError, match="grid axis 'method'"):
        spec_of('[study]\nname = "x"\n[study.grid]\nmethod = ["naive", "no-such-method"]')


def test_example_studies_expand() -> None:
    from medtui.study.spec import load_study

    root = Path(__file__).resolve().parents[1] / "examples"
    small = expand(load_study(root / "synthetic-study.toml"))
    assert small.spec.name == "synthetic-sweep" and len(small.cells) == 4 and len(small.runs) == 18
    gpu = expand(load_study(root / "medmnist-study.toml"))
    assert len(gpu.cells) == 10 and len(gpu.runs) == 48
    assert all(r.config.heldout == ("breastmnist_224",) for r in gpu.runs)


def test_stored_spec_from_before_a_new_config_key_is_the_same_study(db: Path) -> None:
    from medtui.study.store import same_spec

    spec = parse_study(tomllib.loads(STUDY))
    stored = json.loads(spec.canonical())
    del stored["base"]["shots"]  # as stored by a medtui without the key
    assert same_spec(stored, spec)
    stored["seeds"] = [9]
    assert not same_spec(stored, spec)


def test_a_study_typed_into_the_app_is_the_study_file_says_the_same() -> None:
    from medtui.config import RunConfig
    from medtui.study.spec import study_from_form

    base = RunConfig(tasks=("synth-cxr-a", "synth-derm"), epochs=1, max_train=64, device="cpu")
    typed = study_from_form(base, " sweep ", "0, 1, 2", "# what varies\nbuffer_size = 0, 20\n\nmethod = [\"naive\", \"lwf\"]\n", "2")
    text = """
tasks = ["synth-cxr-a", "synth-derm"]
epochs = 1
max_train = 64
device = "cpu"
[study]
name = "sweep"
seeds = [0, 1, 2]
[study.grid]
buffer_size = [0, 20]
method = ["naive", "lwf"]
[study.orders]
count = 2
"""
    from_file = parse_study(tomllib.loads(text))
    assert typed.canonical() == from_file.canonical()
    assert len(expand(typed).runs) == 2 * 2 * 3 * 2


@pytest.mark.parametrize(
    "name, seeds, grid, orders, needle",
    [
        ("", "0", "", "1", "give the study a name"),
        ("s", "0, x", "", "1", "seeds must be whole numbers"),
        ("s", "0", "buffer_size 0, 20", "1", "grid line 1 'buffer_size 0, 20': expected KEY = v1, v2"),
        ("s", "0", "bufer_size = 1", "1", "did you mean buffer_size"),
        ("s", "0", "buffer_size = 0,,20", "1", "empty value"),
        ("s", "0", "buffer_size = 1\nbuffer_size = 2", "1", "given twice"),
        ("s", "0", "buffer_size = -5", "1", "buffer size must be >= 0"),
        ("s", "0", "paradigm = [joint", "1", "not a TOML array"),
        ("s", "0", "", "two", "task orders must be a whole number"),
    ],
)
def test_a_study_typed_into_the_app_refuses_bad_fields_in_one_line(name: str, seeds: str, grid: str, orders: str, needle: str) -> None:
    from medtui.config import RunConfig
    from medtui.study.spec import study_from_form

    with pytest.raises(ConfigError, match=needle) as e:
        study_from_form(RunConfig(tasks=("synth-cxr-a", "synth-derm")), name, seeds, grid, orders)
    assert "\n" not in str(e.value)
