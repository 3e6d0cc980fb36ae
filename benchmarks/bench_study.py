"""How studies scale: expanding and queueing a 500-run study, aggregating 500 finished runs, the Study screen.

Measures, on fresh stores in a temporary folder (no training; finished runs are demo runs,
:func:`medtui.study.demo.seed_demo_study`):

- **expand + queue**: reading the study TOML, expanding it (every cell's config checked: tasks,
  model), storing the study and its 500 runs in one transaction and one scheduler pass (worker
  processes are not started: spawning is replaced by a no-op, since what it would start is
  training, not queueing);
- **study show**: :func:`medtui.study.aggregate.aggregate` on 500 finished runs (mean ± std of
  every metric and matrix of every cell), then the table, Markdown, LaTeX and CSV renderings;
  and the whole ``medtui study show`` command as a process (Python start-up included);
- **Study screen**: from pressing ``t`` until the cell table is filled, and the longest
  event-loop stall during the next refreshes (what a user would feel as lag).

Usage: ``python benchmarks/bench_study.py [--runs-per-cell N]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

BUDGET_QUEUE_S = 2.0
BUDGET_SHOW_S = 1.0
BUDGET_STALL_MS = 100.0

STUDY = """
tasks = ["synth-cxr-a", "synth-cxr-b", "synth-derm", "synth-histo", "synth-blood"]
epochs = 1
device = "cpu"
[study]
name = "bench-500"
seeds = [{seeds}]
[study.grid]
paradigm = ["continual"]
buffer_size = [0, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400]
shots = [1, 4, 16, 64, 0]
"""


def verdict(value: float, budget: float) -> str:
    """``OK`` or ``SLOW`` against a budget."""
    return "OK" if value <= budget else "SLOW"


def bench_queue(folder: Path, text: str) -> tuple[float, int]:
    """Seconds to expand and queue the study from its file, and the number of runs stored."""
    import medtui.jobs.queue as queue
    from medtui.store.store import Store
    from medtui.study.expand import expand
    from medtui.study.spec import load_study
    from medtui.study.store import submit

    f = folder / "study.toml"
    f.write_text(text)
    db = folder / "queue.db"
    Store(db).close()  # an existing store, as on a machine already in use
    spawn = queue.spawn
    queue.spawn = lambda *a, **k: 0  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        plan = expand(load_study(f))
        with Store(db) as s:
            sub = submit(s, plan)
        queue.schedule(db)
        took = time.perf_counter() - t0
    finally:
        queue.spawn = spawn  # type: ignore[assignment]
    return took, len(sub.added)


def bench_show(db: Path) -> dict[str, float]:
    """Seconds of aggregation and of each rendering on the finished study."""
    from medtui.store.store import Store
    from medtui.study.aggregate import aggregate
    from medtui.study.export import results_table, to_csv, to_latex, to_markdown

    out = {}
    with Store(db) as s:
        t0 = time.perf_counter()
        result = aggregate(s, "bench-500")
        out["aggregate"] = time.perf_counter() - t0
    for name, fn in (("table", results_table), ("markdown", to_markdown), ("latex", to_latex), ("csv", to_csv)):
        t0 = time.perf_counter()
        fn(result)
        out[name] = time.perf_counter() - t0
    out["runs"] = result["runs"]
    out["cells"] = len(result["cells"])
    return out


def bench_cli(db: Path) -> float:
    """Wall seconds of ``medtui study show bench-500`` as its own process."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="120")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "medtui", "study", "show", "bench-500", "--db", str(db)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


async def _stall(seconds: float) -> float:
    """The longest event-loop stall (ms) over ``seconds``, sampled every 5 ms."""
    worst, last = 0.0, time.perf_counter()
    end = last + seconds
    while time.perf_counter() < end:
        await asyncio.sleep(0.005)
        now = time.perf_counter()
        worst = max(worst, 1000 * (now - last) - 5)
        last = now
    return worst


async def bench_screen(db: Path) -> tuple[float, float, float]:
    """Milliseconds from ``t`` to a filled cell table; the longest loop stall over refreshes (0.3 s apart) when
    nothing changed, and when a run of the study finishes before every refresh (each one aggregates again)."""
    import threading

    import medtui.jobs.queue as queue
    from helpers import new_app
    from medtui.store.store import Store

    queue.schedule = lambda path: []  # type: ignore[assignment]  # the demo store holds no queued runs anyway
    app = new_app(db, refresh_s=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.5)
        t0 = time.perf_counter()
        await pilot.press("t")
        while not (type(app.screen).__name__ == "StudyScreen" and app.screen.result is not None):
            await asyncio.sleep(0.005)
        opened = 1000 * (time.perf_counter() - t0)
        await pilot.pause(0.5)  # first layout and paint of the screen are part of `opened`, not of a refresh
        quiet = await _stall(1.6)
        stop = threading.Event()

        def touch() -> None:
            with Store(db) as s:
                while not stop.wait(0.25):
                    # as if a run had just finished: the screen aggregates all 500 runs again
                    s.update_run(1, finished_at=time.time())

        toucher = threading.Thread(target=touch, daemon=True)
        toucher.start()
        busy = await _stall(1.6)
        stop.set()
        toucher.join()
    return opened, quiet, busy


def main() -> int:
    """Run every measurement and print figures with verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-per-cell", type=int, default=10, help="seeds per cell (50 cells; default 10 = 500 runs)")
    args = parser.parse_args()
    text = STUDY.format(seeds=", ".join(map(str, range(args.runs_per_cell))))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        took, n = bench_queue(folder, text)
        print(f"expand + queue {n} runs (50 cells, each cell's config checked): {took:.2f} s (budget {BUDGET_QUEUE_S} s) "
              f"-> {verdict(took, BUDGET_QUEUE_S)}; {1000 * took / n:.2f} ms per run")
        from medtui.study.demo import seed_demo_study

        db = folder / "finished.db"
        t0 = time.perf_counter()
        seed_demo_study(db, text)
        print(f"(seeding {n} finished demo runs: {time.perf_counter() - t0:.1f} s, not part of any figure)")
        show = bench_show(db)
        print(f"study show on {show['runs']:.0f} finished runs, {show['cells']:.0f} cells: aggregate {show['aggregate']:.3f} s "
              f"(budget {BUDGET_SHOW_S} s) -> {verdict(show['aggregate'], BUDGET_SHOW_S)}; render table {1000 * show['table']:.1f} ms, "
              f"markdown {1000 * show['markdown']:.1f} ms, latex {1000 * show['latex']:.1f} ms, csv {1000 * show['csv']:.1f} ms")
        cli = bench_cli(db)
        print(f"`medtui study show` as a process (Python start-up and imports included): {cli:.2f} s")
        opened, quiet, busy = asyncio.run(bench_screen(db))
        print(f"Study screen on {show['runs']:.0f} runs: filled {opened:.0f} ms after `t`; longest loop stall over refreshes: "
              f"{quiet:.0f} ms with nothing changed, {busy:.0f} ms with a run finishing before each refresh "
              f"(budget {BUDGET_STALL_MS:.0f} ms) -> {verdict(max(quiet, busy), BUDGET_STALL_MS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
