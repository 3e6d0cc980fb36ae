"""ETA arithmetic on hand-computed plans, and the plan a real (tiny) run records."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from medtui.eta import eta_seconds, fmt_eta, make_plan, parse_duration, rates, run_eta, schedule_eta, steps_per_epoch

# two stages: a (100 train, 40 test) then b (50 train, 20 test); 2 epochs of batches of 32
PLAN = make_plan([["a"], ["b"]], {"a": 100, "b": 50}, {"a": 40, "b": 20}, epochs=2, batch_size=32)


def test_steps_per_epoch_merges_a_last_batch_of_one() -> None:
    assert steps_per_epoch(100, 32) == 4  # 32+32+32+4
    assert steps_per_epoch(33, 32) == 1  # 32+1 merged
    assert steps_per_epoch(32, 32) == 1
    assert steps_per_epoch(0, 32) == 0


def test_plan_counts_steps_images_and_replay() -> None:
    assert [(s["steps"], s["images"]) for s in PLAN["stages"]] == [(8, 200), (4, 100)]
    assert PLAN["eval_images"] == 60
    # a 30-sample buffer replays min(32, 30, 100 seen) = 30 samples per step of stage 2 (none in stage 1)
    buffered = make_plan([["a"], ["b"]], {"a": 100, "b": 50}, {"a": 40}, epochs=2, batch_size=32, buffer_size=30)
    assert [s["images"] for s in buffered["stages"]] == [200, (50 + 2 * 30) * 2]
    joint = make_plan([["a", "b"]], {"a": 100, "b": 50}, {}, epochs=1, batch_size=32)
    assert joint["stages"][0]["steps"] == 5 and joint["stages"][0]["images"] == 150


def test_eta_during_the_first_stage() -> None:
    # zero-shot took 0.6 s for 60 images (100 img/s); training at 50 img/s, 2 of 8 steps done
    p = {"plan": PLAN, "rows_done": 1, "stage": 1, "step": 2, "n_steps": 8, "throughput": 50.0, "eval_s": 0.6, "at": 1000.0}
    # (0.75 * 200 + 100) images / 50 + 2 evaluations * 0.6 s
    assert eta_seconds(p, now=1000.0) == pytest.approx(6.2)
    assert eta_seconds(p, now=1002.0) == pytest.approx(4.2)
    assert eta_seconds(p, now=2000.0) == 0.0


def test_eta_before_the_first_step_derives_the_training_rate() -> None:
    p = {"plan": PLAN, "rows_done": 1, "stage": 0, "eval_s": 0.6}
    assert rates(p) == pytest.approx((100 / 3, 100))
    assert eta_seconds(p) == pytest.approx(300 / (100 / 3) + 1.2)


def test_eta_of_a_resumed_run_derives_the_evaluation_rate() -> None:
    # resumed after stage 1: only stage 2 and its evaluation are left; eval rate = 3 * 60 img/s
    p = {"plan": PLAN, "rows_done": 2, "stage": 1, "step": 0, "n_steps": 0, "throughput": 60.0}
    assert eta_seconds(p) == pytest.approx(100 / 60 + 60 / 180)


def test_eta_while_evaluating_the_last_stage_and_when_done() -> None:
    p = {"plan": PLAN, "rows_done": 2, "stage": 2, "step": 4, "n_steps": 4, "throughput": 50.0, "eval_s": 0.6}
    assert eta_seconds(p) == pytest.approx(0.6)
    assert eta_seconds({**p, "rows_done": 3}) == 0.0


def test_no_eta_without_a_plan_or_a_rate() -> None:
    assert eta_seconds(None) is None
    assert eta_seconds({"stage": 1, "step": 3, "n_steps": 10, "throughput": 50.0}) is None
    assert eta_seconds({"plan": PLAN, "rows_done": 0}) is None
    assert run_eta({"status": "finished", "progress": {"plan": PLAN, "throughput": 5.0}}) is None
    assert run_eta({"status": "running", "progress": {"plan": PLAN, "rows_done": 3, "throughput": 5.0}}) == 0.0


def test_schedule_eta_fills_the_slot_that_frees_first() -> None:
    assert schedule_eta([10, 5, 5, 2], parallel=2) == 12
    assert schedule_eta([10, 5, 5, 2], parallel=1) == 22
    assert schedule_eta([], parallel=3) == 0


def test_fmt_eta_uses_the_one_duration_format() -> None:
    assert fmt_eta(61.6) == "ETA 1m02s"
    assert fmt_eta(3725) == "ETA 1h02m"
    assert fmt_eta(4.23) == "ETA 4.2s" and fmt_eta(9.96) == "ETA 10s" and fmt_eta(0) == "ETA 0.0s"
    assert fmt_eta(None) == "ETA —"
    for seconds in (0.0, 4.2, 12, 185, 3720):
        assert parse_duration(fmt_eta(seconds).removeprefix("ETA ")) == seconds
    assert parse_duration("—") is None and parse_duration("soon") is None


def test_a_run_records_a_plan_that_matches_what_it_did(db: Path) -> None:
    from medtui.events import ListSink, RunStarted, StageStarted
    from medtui.engine.run import run_experiment
    from medtui.store.sink import StoreSink
    from medtui.store.store import Store
    from medtui.events import MultiSink
    from helpers import fast_config

    cfg = fast_config(buffer_size=20)
    events = ListSink()
    with Store(db) as store:
        rid = store.create_run(cfg, status="running")
        run_experiment(cfg, MultiSink(StoreSink(store, rid), events))
        progress = store.get_run(rid)["progress"]
    plan = events.of(RunStarted)[0].plan
    assert [s["steps"] for s in plan["stages"]] == [e.n_steps for e in events.of(StageStarted)]
    assert [s["samples"] for s in plan["stages"]] == [e.n_samples for e in events.of(StageStarted)]
    assert plan["eval_images"] == 2 * 48
    assert progress["plan"] == plan and progress["rows_done"] == 3 and progress["eval_s"] > 0
    assert eta_seconds(progress) == 0.0


def test_the_tracker_folds_events_as_the_store_does(db: Path) -> None:
    from medtui.eta import ProgressTracker
    from medtui.events import ListSink, MultiSink, StepLogged
    from medtui.engine.run import run_experiment
    from medtui.store.sink import StoreSink
    from medtui.store.store import Store
    from helpers import fast_config

    cfg = fast_config(epochs=2)
    tracker, events = ProgressTracker(), ListSink()
    seen: list[tuple[dict, float | None]] = []

    def probe(event: object) -> None:
        tracker(event)
        if isinstance(event, StepLogged):
            seen.append((dict(tracker.progress), tracker.eta()))

    with Store(db) as store:
        rid = store.create_run(cfg, status="running")
        run_experiment(cfg, MultiSink(StoreSink(store, rid), events, probe))
        stored = store.get_run(rid)["progress"]
    keys = ("plan", "rows_done", "stage", "step", "n_steps", "throughput", "eval_s")
    assert {k: tracker.progress[k] for k in keys} == {k: stored[k] for k in keys}
    assert seen and all(eta is not None and eta >= 0 for _, eta in seen)
    # the ETA is the remaining work over the measured rates, worked out by hand for the first logged step
    p, eta = seen[0]
    plan = p["plan"]
    train_left = (1 - p["step"] / p["n_steps"]) * plan["stages"][0]["images"] + plan["stages"][1]["images"]
    by_hand = train_left / p["throughput"] + 2 * p["eval_s"]
    assert eta == pytest.approx(by_hand, abs=0.05)  # `at` is the moment of the step: almost nothing to take off


# a run 2 steps into stage 1 of PLAN, written just now: (150 + 100) / 2.5 img/s + 2 * 1 s = 102 s left
LIVE = {"plan": PLAN, "n_stages": 2, "rows_done": 1, "stage": 1, "step": 2, "n_steps": 8, "throughput": 2.5, "eval_s": 1.0}


def live_run(db: Path) -> int:
    from medtui.config import RunConfig, resolve
    from medtui.store.store import Store

    now = time.time()
    with Store(db) as s:
        # a fresh heartbeat: liveness checks must not mark it dead while the test reads it
        return s.create_run(resolve(RunConfig(tasks=("synth-cxr-a", "synth-derm"), name="live")), status="running",
                            started_at=now, heartbeat_at=now, host="test", device="cpu", progress={**LIVE, "at": now})


def test_the_runs_list_detail_header_and_queue_show_the_eta(db: Path) -> None:
    from typer.testing import CliRunner

    from medtui.cli import app
    from medtui.tui.screens.detail import header_text
    from medtui.tui.screens.runs import status_text

    assert eta_seconds({**LIVE, "at": 1000.0}, now=1000.0) == pytest.approx(102.0)
    run = {"status": "running", "progress": {**LIVE, "at": 1000.0}}
    assert status_text(run, now=1000.0) == "▶ 1/2 ETA 1m42s"
    assert status_text(run, now=1060.0) == "▶ 1/2 ETA 42s"
    detail = {"id": 7, "name": "live", "paradigm": "continual", "buffer": {"budget": 0}, "device": "cpu", "weights": "random", **run}
    assert "▶ running ETA 1m42s" in header_text(detail, now=1000.0).plain
    assert "ETA" not in header_text({**detail, "status": "finished"}, now=1000.0).plain

    rid = live_run(db)
    runner = CliRunner()
    out = runner.invoke(app, ["queue", "--db", str(db)], env={"NO_COLOR": "1"})
    assert out.exit_code == 0, out.output
    assert re.search(rf"running  #{rid} live .* · ETA 1m4[12]s", out.stdout), out.stdout
    assert re.search(r"the running ones done in 1m4[12]s", out.stdout)
    js = json.loads(runner.invoke(app, ["queue", "--db", str(db), "--json"]).stdout)
    assert js["running"][0]["eta_s"] == pytest.approx(102.0, abs=2)
    listing = runner.invoke(app, ["runs", "--db", str(db)], env={"NO_COLOR": "1", "COLUMNS": "80"}).stdout
    assert re.search(r"ETA 1m4[12]s", listing), listing


def test_study_eta_uses_each_running_runs_eta_and_the_slots() -> None:
    from medtui.cli.study_wait import study_eta

    p = {"plan": PLAN, "rows_done": 1, "stage": 1, "step": 2, "n_steps": 8, "throughput": 50.0, "eval_s": 0.6, "at": 1000.0}
    running = {"status": "running", "started_at": 994.0, "finished_at": None, "progress": p}  # 6.2 s left
    queued = {"status": "queued", "started_at": None, "finished_at": None, "progress": {}}
    done = {"status": "finished", "started_at": 900.0, "finished_at": 910.0, "progress": {}}
    # before any run finished, a queued run is taken to last as long as the running one will: 6 + 6.2 s
    assert study_eta([running, queued], parallel=1, now=1000.0) == pytest.approx(6.2 + 12.2)
    assert study_eta([running, queued], parallel=2, now=1000.0) == pytest.approx(12.2)
    # once one finished (10 s), queued runs count for the mean finished duration
    assert study_eta([done, running, queued, queued], parallel=2, now=1000.0) == pytest.approx(6.2 + 10.0)
    assert study_eta([done], parallel=1, now=1000.0) == 0.0
    # nothing measured yet: no ETA rather than a guess
    assert study_eta([queued], parallel=1, now=1000.0) is None
    assert study_eta([{**running, "progress": {}}, queued], parallel=1, now=1000.0) is None
