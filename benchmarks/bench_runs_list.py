"""How the runs list feels with thousands of runs: open, filter, sort and background refresh times.

Seeds a store with demo runs (:func:`medtui.store.demo.seed_demo_runs`; made-up
finished runs, no training), opens the app on a copy of it headless with
``App.run_test(size=(120, 40))`` and measures, in milliseconds:

- **open**: from app start until the runs table holds every run;
- **filter**: per keystroke of ``/`` + a word, until the table shows the matching rows,
  and clearing the filter again (esc);
- **sort**: per press of ``s`` (each press sorts by the next column);
- **refresh**: one background refresh cycle when nothing changed and when one run changed.

Besides the elapsed time it reports the longest **event-loop stall** during each
operation: the time the UI could not react to a key, which is what a user feels
as lag (work in thread workers does not stall the loop). Each figure gets a
verdict against a "no noticeable lag" budget.

Seeding 5,000 runs takes a couple of minutes on 2 CPU cores, so the seeded store is
cached under the system temp folder and copied for each benchmark (``--fresh`` reseeds).

Usage: ``python benchmarks/bench_runs_list.py [--runs N] [--fresh] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: Budgets (ms) under which an operation feels instant.
BUDGET_OPEN_MS = 2000.0
BUDGET_KEY_MS = 300.0
BUDGET_REFRESH_STALL_MS = 100.0  # a refresh runs every 1.5 s: it must not freeze typing
FILTER_WORD = "joint"
SORT_PRESSES = 6
#: What a profile shows: medtui itself and the Textual/Rich code it drives.
PROFILE_FILTER = r"medtui/|_data_table|_compositor|rich/text|sqlite|json"
#: The characters of the named keys the benchmark presses.
KEY_CHARS = {"slash": "/", "escape": "\x1b", "enter": "\r"}
#: A fixed clock for seeding, so the cached store is the same on every machine.
SEED_NOW = 1_750_000_000.0


@dataclass
class Figure:
    """One measured operation: elapsed time, longest event-loop stall, and its budget."""

    name: str
    ms: float
    stall_ms: float
    budget_ms: float
    note: str = ""



class Profiler:
    """With ``--profile``: cProfile of the event-loop thread around each operation, top entries printed when over budget."""

    def __init__(self, enabled: bool, top: int = 14) -> None:
        self.enabled = enabled
        self.top = top
        self.prof: cProfile.Profile | None = None

    def start(self) -> None:
        """Start profiling an operation."""
        if self.enabled:
            self.prof = cProfile.Profile()
            self.prof.enable()

    def stop(self, figure: Figure) -> None:
        """Stop; print where the time went when ``figure`` is over its budget."""
        if self.prof is None:
            return
        self.prof.disable()
        if not figure_ok(figure):
            out = io.StringIO()
            # only the app's own code and the widgets it drives: asyncio and message plumbing wrap everything
            pstats.Stats(self.prof, stream=out).sort_stats("cumulative").print_stats(PROFILE_FILTER, self.top)
            lines = [ln for ln in out.getvalue().splitlines() if ln.strip() and not ln.lstrip().startswith(("List reduced", "Ordered by"))]
            lines = lines[lines.index(next(ln for ln in lines if "ncalls" in ln)):]
            print(f"--- profile of '{figure.name}' (event-loop thread, cumulative) ---", file=sys.stderr)
            print("\n".join(lines), file=sys.stderr)
        self.prof = None


def figure_ok(f: Figure) -> bool:
    """Whether an operation fits its budget: a refresh by its stall (its read runs in a thread), others by
    the longer of elapsed time and stall."""
    cost = f.stall_ms if f.name.startswith("refresh") else max(f.ms, f.stall_ms)
    return cost <= f.budget_ms


@dataclass
class StallMeter:
    """Measures the longest gap between ticks of a task that wakes every ``tick_s`` on the event loop."""

    tick_s: float = 0.002
    max_gap: float = 0.0
    _last: float = field(default_factory=time.perf_counter)
    _task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.perf_counter()
            self.max_gap = max(self.max_gap, now - self._last - self.tick_s)
            self._last = now

    def start(self) -> None:
        """Start ticking."""
        self._last = time.perf_counter()
        self._task = asyncio.get_running_loop().create_task(self._run())

    def reset(self) -> None:
        """Forget the gaps seen so far."""
        self._last = time.perf_counter()
        self.max_gap = 0.0

    @property
    def stall_ms(self) -> float:
        """The longest gap since the last reset, in ms."""
        return 1000.0 * max(self.max_gap, time.perf_counter() - self._last - self.tick_s, 0.0)

    def stop(self) -> None:
        """Stop ticking."""
        if self._task:
            self._task.cancel()


def seeded_store(n: int, fresh: bool) -> Path:
    """A cached store with ``n`` demo runs (seeded once; ``fresh`` reseeds)."""
    from medtui.store.demo import seed_demo_runs

    cache = Path(tempfile.gettempdir()) / "medtui-bench" / f"demo-{n}.db"
    if cache.exists() and not fresh:
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.db"
        t0 = time.perf_counter()
        print(f"seeding {n} demo runs (once; cached in {cache}) …", file=sys.stderr, flush=True)
        seed_demo_runs(path, n, seed=0, now=SEED_NOW)
        print(f"seeded in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        shutil.copy(path, cache)  # the store was closed, so its WAL is checkpointed into the file
    return cache


async def wait_until(pilot: object, cond: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Yield to the app until ``cond()`` holds (polling every 2 ms)."""
    end = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


async def measure(db: Path, n: int, profile: bool = False) -> list[Figure]:
    """Open the app on ``db`` and time each operation (``profile``: cProfile the slow ones)."""
    from textual import events
    from textual.widgets import Input

    from medtui.store.store import Store
    from medtui.tui.app import make_app
    from medtui.tui.screens.runs import RunsScreen, matches

    figures: list[Figure] = []
    meter = StallMeter()
    profiler = Profiler(profile)
    # no timer refreshes: the benchmark triggers each refresh itself
    app = make_app(db, refresh_s=3600.0)
    t0 = time.perf_counter()
    meter.start()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        table = screen.query_one("#runs-table")
        await wait_until(pilot, lambda: len(table.order) == n, f"{n} rows")
        app.screen._on_timer_update()  # the first paint of the full table
        elapsed = 1000 * (time.perf_counter() - t0)
        await pilot.pause()
        figures.append(Figure(f"open ({n} rows)", elapsed, meter.stall_ms, BUDGET_OPEN_MS))

        # -- filter: one figure per keystroke --------------------------------------------------
        async def timed_key(name: str, key: str, cond: Callable[[], bool], budget: float) -> Figure:
            # Pilot.press would add its own waits for CPU idleness: send the key as the driver
            # does, wait for the effect, then paint, and time exactly that.
            await pilot.pause()
            meter.reset()
            profiler.start()
            t = time.perf_counter()
            event = events.Key(key, KEY_CHARS.get(key, key))
            event.set_sender(app)
            app._driver.send_message(event)
            await wait_until(pilot, cond, name)
            app.screen._on_timer_update()  # the repaint a terminal would show (what Pilot.pause does)
            elapsed = 1000 * (time.perf_counter() - t)
            await pilot.pause()  # deferred work (the table measures new rows when idle) belongs to this key
            fig = Figure(name, elapsed, meter.stall_ms, budget)
            profiler.stop(fig)
            return fig

        box = screen.query_one("#runs-filter", Input)
        figures.append(await timed_key("filter: press /", "slash", lambda: box.has_focus, BUDGET_KEY_MS))
        runs = list(screen.runs.values())
        typed = ""
        for ch in FILTER_WORD:
            typed += ch
            want = sum(matches(r, typed) for r in runs)
            figures.append(
                await timed_key(
                    f"filter: type {typed!r} → {want} rows", ch,
                    lambda t=typed, w=want: screen.filter_text == t and len(table.order) == w, BUDGET_KEY_MS,
                )
            )
        await pilot.press("enter")  # back to the table, the filter stays
        await pilot.pause()
        # esc clears the filter: every row comes back
        figures.append(await timed_key(f"filter: clear (esc) → {n} rows", "escape", lambda: len(table.order) == n, BUDGET_KEY_MS))

        # -- sort: one figure per press (each press sorts by the next column) -------------------
        sort_figs = []
        for _ in range(SORT_PRESSES):
            before = screen.sort_key
            fig = await timed_key("sort", "s", lambda b=before: screen.sort_key != b, BUDGET_KEY_MS)
            fig.name = f"sort: press s → by {screen.sort_key}"
            sort_figs.append(fig)
        figures.extend(sort_figs)

        # -- background refresh ----------------------------------------------------------------------
        async def refresh_cycle(name: str, cond: Callable[[], bool] = lambda: True) -> Figure:
            loads = screen.loads
            meter.reset()
            profiler.start()
            t = time.perf_counter()
            screen.refresh_runs()
            await wait_until(pilot, lambda: screen.loads > loads and cond(), name)
            app.screen._on_timer_update()
            elapsed = 1000 * (time.perf_counter() - t)
            await pilot.pause()
            fig = Figure(name, elapsed, meter.stall_ms, BUDGET_REFRESH_STALL_MS)
            profiler.stop(fig)
            return fig

        # two idle cycles: the first may still see runs written within the reader's 2 s overlap
        await refresh_cycle("refresh warm-up")
        idle = [await refresh_cycle("refresh: nothing changed") for _ in range(3)]
        figures.append(min(idle, key=lambda f: f.ms))
        rid = max(screen.runs)
        with Store(db) as store:
            store.update_run(rid, name="bench-renamed")
        figures.append(await refresh_cycle("refresh: one run changed", lambda: screen.runs[rid]["name"] == "bench-renamed"))
        figures[-1].note = f"{len(screen.runs)} runs"
    meter.stop()
    # elapsed time for a refresh includes the read in a thread; only the stall blocks the UI
    for f in figures:
        if f.name.startswith("refresh"):
            f.note = "budget applies to the stall (the read runs in a thread)"
    return figures


def report(figures: list[Figure]) -> bool:
    """Print the figures and verdicts; True when all fit their budgets."""
    print(f"{'operation':<44} {'elapsed ms':>11} {'max stall ms':>13} {'budget ms':>10}  verdict")
    for f in figures:
        print(f"{f.name:<44} {f.ms:>11.0f} {f.stall_ms:>13.0f} {f.budget_ms:>10.0f}  {'ok' if figure_ok(f) else 'SLOW'}")
    keys = [f for f in figures if f.name.startswith(("filter: type", "sort"))]
    if keys:
        print(f"median per keystroke/press: {statistics.median(f.ms for f in keys):.0f} ms")
    slow = [f for f in figures if not figure_ok(f)]
    print("verdict:", "no noticeable lag" if not slow else f"noticeable lag in {len(slow)} operation(s): " + ", ".join(f.name for f in slow))
    return not slow


def main(argv: list[str] | None = None) -> int:
    """Seed (or reuse) the store, measure, print; exit 1 when an operation is over budget."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5000, help="number of demo runs (default 5000)")
    parser.add_argument("--fresh", action="store_true", help="reseed instead of reusing the cached store")
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary of each over-budget operation")
    args = parser.parse_args(argv)
    cached = seeded_store(args.runs, args.fresh)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        shutil.copy(cached, db)  # the app may write (queue upkeep); the cache stays pristine
        figures = asyncio.run(measure(db, args.runs, args.profile))
    return 0 if report(figures) else 1


if __name__ == "__main__":
    sys.exit(main())
