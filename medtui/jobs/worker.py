"""The worker: runs one stored run to its end, in the foreground or as a detached process.

``python -m medtui.worker RUN_ID --db PATH`` is what background launches start
(in a new session, so it outlives the app and the SSH connection); ``medtui run
--headless`` calls :func:`execute` in its own process. Either way the worker
records its pid and a heartbeat, polls for cancellation, resumes from the last
stage checkpoint when the run has one, and starts queued runs when it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, TextIO

from medtui.errors import MedtuiError, RunCancelled, UsageError
from medtui.format import fmt_duration
from medtui.events import Event, LogLine, MultiSink, RunFinished, StageFinished, StageStarted, StepLogged, TaskEvaluated
from medtui.jobs.paths import checkpoint_dir, log_path
from medtui.jobs.provenance import provenance
from medtui.store.sink import StoreSink
from medtui.store.store import Store

HEARTBEAT_S = 2.0
#: A run whose heartbeat cannot be written for this long stops (below the store's 60 s staleness).
HEARTBEAT_FAIL_S = 45.0


class LineSink:
    """Writes events as plain, timestamped log lines (the run's log file, or a non-terminal stream)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        """Write one line for the events worth a line."""
        line = format_event(event)
        if line:
            self.stream.write(f"{time.strftime('%H:%M:%S')} {line}\n")
            self.stream.flush()


def format_event(event: Event) -> str | None:
    """A one-line human description of an event, or None for events not worth a line."""
    if isinstance(event, LogLine):
        return event.message
    if isinstance(event, StageStarted):
        return f"stage {event.stage}: {event.label} — {event.n_samples} samples, {event.n_steps} steps"
    if isinstance(event, StepLogged):
        return (
            f"stage {event.stage} step {event.step}/{event.n_steps} epoch {event.epoch} "
            f"loss {event.loss:.4f} lr {event.lr:.2e} {event.throughput:.0f} img/s"
        )
    if isinstance(event, TaskEvaluated):
        auc = f" auc {event.auc:.3f}" if event.auc is not None else ""
        return f"eval [{event.row_label}] {event.task}: acc {event.accuracy:.3f}{auc}"
    if isinstance(event, StageFinished) and event.stage:
        return f"stage {event.stage} finished in {fmt_duration(event.seconds)}"
    if isinstance(event, RunFinished):
        return f"run {event.status}" + (f": {event.error}" if event.error else "")
    return None


class Heartbeat(threading.Thread):
    """Updates the run's heartbeat and polls its cancel flag, on its own connection.

    A failed beat (a locked or unwritable store) is logged on ``log_stream`` and retried at
    the next beat; when no beat could be written for ``fail_after_s`` the run is stopped and
    :attr:`failure` says why (the store would otherwise soon judge it dead while it trains on).
    """

    def __init__(self, db_path: Path, run_id: int, stop: threading.Event, *, every_s: float = HEARTBEAT_S,
                 fail_after_s: float = HEARTBEAT_FAIL_S, log_stream: TextIO | None = None) -> None:
        super().__init__(daemon=True, name=f"heartbeat-{run_id}")
        self.db_path, self.run_id, self.stop_flag = db_path, run_id, stop
        self.every_s, self.fail_after_s = every_s, fail_after_s
        self.log_stream = log_stream if log_stream is not None else sys.stderr
        self.done = threading.Event()
        #: Why the heartbeat stopped the run (None while it could write).
        self.failure: str | None = None

    def _say(self, text: str) -> None:
        with contextlib.suppress(Exception):  # a closed stream must not end the heartbeat
            self.log_stream.write(f"{time.strftime('%H:%M:%S')} heartbeat: {text}\n")
            self.log_stream.flush()

    def run(self) -> None:
        """Beat until :attr:`done` is set."""
        store: Store | None = None
        last_ok, last_error = time.monotonic(), None
        while not self.done.wait(self.every_s):
            try:
                if store is None:
                    store = Store(self.db_path)
                store.update_run(self.run_id, heartbeat_at=time.time())
                if store.cancel_requested(self.run_id):
                    self.stop_flag.set()
                if last_error is not None:
                    self._say("written again")
                last_ok, last_error = time.monotonic(), None
            except Exception as e:  # noqa: BLE001 - any failure to beat is logged and counted, never fatal at once
                text = f"{type(e).__name__}: {e}"
                if text != last_error:
                    self._say(f"cannot write the heartbeat ({text}); retrying")
                last_error = text
                down = time.monotonic() - last_ok
                if down >= self.fail_after_s:
                    self.failure = f"heartbeat could not be written for {down:.0f} s ({text})"
                    self._say(f"stopping the run: {self.failure}")
                    self.stop_flag.set()
                    break
        if store is not None:
            store.close()


def execute(
    db_path: str | Path,
    run_id: int,
    *,
    extra_sink: Callable[[Event], None] | None = None,
    log_stream: TextIO | None = None,
    handle_signals: bool = True,
) -> int:
    """Run (or resume) stored run ``run_id`` to its end. Returns an exit code: 0 finished, 1 failed or cancelled, 2 bad input.

    ``extra_sink`` also receives every event (the CLI's progress display). The pid and a
    first heartbeat are written, and the heartbeat thread started, before the slow imports
    (torch), so that a run being started is never judged dead.
    """
    db_path = Path(db_path).resolve()
    store = Store(db_path)
    run = store.get_run(run_id)
    config = store.config(run_id)
    stop = threading.Event()
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    log_file = log_path(db_path, run_id)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    store.update_run(
        run_id,
        status="running",
        pid=os.getpid(),
        started_at=run["started_at"] or time.time(),
        finished_at=None,
        heartbeat_at=time.time(),
        error=None,
        log_path=str(log_file),
    )  # cancel_requested stays: a cancel asked for while the worker was starting still counts
    if run["cancel_requested"]:
        stop.set()
    heart = Heartbeat(db_path, run_id, stop, log_stream=log_stream)
    heart.start()
    store.update_run(run_id, **provenance())
    from medtui.engine.run import ResumePoint, run_experiment

    resume = None
    if run["last_stage"] >= 1:
        latest = store.latest_checkpoint(run_id)
        if latest is not None:
            resume = ResumePoint(stage=latest[0], checkpoint=latest[1])
    code = 0
    with open(log_file, "a", encoding="utf-8", buffering=1) as fh:
        # the log line first: whoever sees the new status in the store finds the line already written
        sinks: list[Callable[[Event], None]] = [LineSink(fh), StoreSink(store, run_id)]
        if log_stream is not None:
            sinks.append(LineSink(log_stream))
        if extra_sink is not None:
            sinks.append(extra_sink)
        sink = MultiSink(*sinks)
        try:
            run_experiment(
                config,
                sink,
                checkpoint_dir=checkpoint_dir(db_path, run_id),
                resume=resume,
                should_stop=stop.is_set,
            )
        except RunCancelled:
            code = 1
        except UsageError:
            code = 2
        except MedtuiError:
            code = 1
        except BaseException:
            fh.write(traceback.format_exc())
            code = 1
        finally:
            heart.done.set()
            heart.join(timeout=5)
        if heart.failure:
            code = 1
            fh.write(f"run failed: {heart.failure}\n")
            with contextlib.suppress(Exception):  # the store may be what failed
                store.update_run(run_id, status="failed", error=heart.failure, pid=None, finished_at=time.time())
    store.close()
    from medtui.jobs.queue import schedule

    try:
        schedule(db_path)
    except Exception:  # the next run is also started by the next CLI/app call; never fail this run for it
        pass
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m medtui.worker RUN_ID --db PATH``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medtui.worker", description="Run one stored medtui run.")
    parser.add_argument("run_id", type=int)
    parser.add_argument("--db", required=True)
    args = parser.parse_args(argv)
    # stdout and stderr of a detached worker already go to the run's log file
    return execute(args.db, args.run_id)
