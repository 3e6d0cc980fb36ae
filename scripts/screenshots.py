"""Regenerate the README screenshots (SVG) from real runs.

In a temporary folder, two short real experiments are run with the CLI (continual
fine-tuning on three synthetic tasks with a held-out one, without and with a
rehearsal buffer); the app is then opened headless on that store at 100×32 and each
screen is saved as an SVG: runs list, run detail (matrix tab, training tab), new experiment,
compare, datasets.
A screen whose module does not exist yet is skipped with a note.

Usage: ``python scripts/screenshots.py [--out assets] [--db STORE | --keep-db STORE] [--epochs N] [--max-train N]``
(``--db`` reuses a store that already holds at least two finished runs; ``--keep-db`` saves
the one the experiments wrote, for that.)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

SIZE = (100, 32)
#: The two experiments: the same sequence without and with a rehearsal buffer.
EXPERIMENTS: tuple[tuple[str, int], ...] = (("sequential-ft", 0), ("rehearsal-100", 100))
BASE_ARGS = [
    "run", "--headless", "--tasks", "synth-cxr-a,synth-cxr-b,synth-derm", "--heldout", "synth-blood", "--max-test", "200",
]
# With 2 epochs of 300 images at batch 64 (about 10 steps per task) the tiny model stays at
# chance (50 %) on every task; 3 epochs of 600 at batch 32 reach ~98 % on synth-cxr-a in
# about 40 s on 2 CPU cores, so the screenshots show learning and forgetting.
DEFAULT_EPOCHS, DEFAULT_MAX_TRAIN, DEFAULT_BATCH = 3, 600, 32


def run_experiments(db: Path, epochs: int, max_train: int, batch_size: int) -> None:
    """Train the runs for the screenshots with the CLI, each in its own process (torch stays out of this one)."""
    budget = ["--epochs", str(epochs), "--max-train", str(max_train), "--batch-size", str(batch_size)]
    for name, buffer in EXPERIMENTS:
        cmd = [sys.executable, "-m", "medtui", *BASE_ARGS, *budget, "--buffer-size", str(buffer), "--name", name, "--db", str(db)]
        print(f"running: medtui {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"experiment {name!r} failed with exit code {done.returncode}")
        print(f"  finished in {time.perf_counter() - t0:.0f} s (run {done.stdout.strip()})", file=sys.stderr)


def finished_runs(db: Path) -> list[int]:
    """Ids of the store's finished runs, oldest first."""
    from medtui.store.store import Store

    with Store(db, create=False) as store:
        return sorted(int(r["id"]) for r in store.list_runs(status="finished"))


def screen_available(module: str) -> bool:
    """Whether ``medtui.tui.screens.<module>`` can be imported (others may still be writing it)."""
    try:
        importlib.import_module(f"medtui.tui.screens.{module}")
    except ImportError as exc:
        print(f"skipped: medtui.tui.screens.{module} cannot be imported yet ({exc})", file=sys.stderr)
        return False
    return True


async def settle(pilot: object, app: object, seconds: float = 0.6) -> None:
    """Let the screen's workers finish and its timers fire once, then let it paint."""
    end = time.monotonic() + 15.0
    await pilot.pause()  # type: ignore[attr-defined]
    while any(w.is_running for w in app.workers) and time.monotonic() < end:  # type: ignore[attr-defined]
        await asyncio.sleep(0.05)
    await pilot.pause(seconds)  # type: ignore[attr-defined]


async def capture(db: Path, out: Path) -> list[Path]:
    """Open the app on ``db`` and save one SVG per screen into ``out``."""
    from medtui.tui.app import make_app
    from medtui.tui.screens.runs import RunsScreen

    ids = finished_runs(db)
    if len(ids) < 2:
        raise SystemExit(f"{db} needs at least two finished runs, found {len(ids)}")
    saved: list[Path] = []
    app = make_app(db, refresh_s=0.5)
    async with app.run_test(size=SIZE) as pilot:

        def save(name: str) -> None:
            path = out / f"{name}.svg"
            app.save_screenshot(path.name, str(out))
            saved.append(path)
            print(f"saved {path}", file=sys.stderr)

        async def shot(name: str, module: str, open_screen: Callable[[], object], then: Callable[[], Awaitable[None]] | None = None) -> None:
            if not screen_available(module):
                return
            open_screen()
            await settle(pilot, app)
            if then is not None:
                await then()
                await settle(pilot, app)
            save(name)
            app.pop_screen()
            await pilot.pause()

        await settle(pilot, app)
        runs = app.screen
        assert isinstance(runs, RunsScreen)
        table = runs.query_one("#runs-table")
        while len(table.order) < len(ids):
            await pilot.pause(0.1)
        # mark both runs, as one does before comparing
        await pilot.press("space", "space")
        table.cursor = 0
        await settle(pilot, app)
        save("runs")

        await shot("detail", "detail", lambda: app.open_run(ids[-1]))

        async def training_tab() -> None:
            await pilot.press("2")  # type: ignore[attr-defined]

        await shot("training", "detail", lambda: app.open_run(ids[-1]), training_tab)
        await shot("new", "new", lambda: app.open_new(None))
        await shot("compare", "compare", lambda: app.open_compare(ids[-2:]))

        async def pick_task() -> None:
            await datasets_pick(app, pilot, "synth-derm")

        await shot("datasets", "datasets", app.action_datasets, pick_task)
    return saved


async def datasets_pick(app: object, pilot: object, name: str) -> None:
    """On the Datasets screen, move to task ``name`` and load it (enter)."""
    from textual.widgets import Tree

    screen = app.screen  # type: ignore[attr-defined]
    tree = screen.query_one("#ds-tree", Tree)
    end = time.monotonic() + 15.0
    while not getattr(screen, "entries", None) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    for line in range(tree.last_line + 1):
        node = tree.get_node_at_line(line)
        if node is not None and node.data == name and node.allow_expand:
            tree.move_cursor(node)
            break
    await pilot.press("enter")  # type: ignore[attr-defined]
    while name not in screen.summaries and name not in screen.errors and time.monotonic() < end:
        await asyncio.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    """Run the experiments (unless ``--db`` is given) and save the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "assets", help="folder for the SVGs")
    parser.add_argument("--db", type=Path, help="reuse this store instead of running the experiments")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"epochs per stage (default {DEFAULT_EPOCHS})")
    parser.add_argument("--max-train", type=int, default=DEFAULT_MAX_TRAIN, help=f"train images per task (default {DEFAULT_MAX_TRAIN})")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help=f"batch size (default {DEFAULT_BATCH})")
    parser.add_argument("--keep-db", type=Path, help="copy the experiments' store here (to rerun with --db)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    # screenshots must not depend on the user's settings or MedMNIST cache
    for var in ("MEDTUI_DB", "MEDTUI_MAX_PARALLEL"):
        os.environ.pop(var, None)
    # a relative data folder: the stored configs (shown on the compare screen) carry no machine path
    os.environ["MEDTUI_DATA_DIR"] = "data"
    with tempfile.TemporaryDirectory(prefix="medtui-shots-") as tmp:
        db = args.db
        if db is None:
            db = Path(tmp) / "experiments.db"
            run_experiments(db, args.epochs, args.max_train, args.batch_size)
            if args.keep_db:
                from medtui.store.store import Store

                with Store(db) as store:  # VACUUM INTO copies a consistent snapshot, WAL included
                    store.db.execute("VACUUM INTO ?", [str(args.keep_db)])
        saved = asyncio.run(capture(db.resolve(), args.out))
    print(f"{len(saved)} screenshot(s) in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
