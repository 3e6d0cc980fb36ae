"""The new-experiment form, driven by keyboard through its real widgets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select, Static

from medtui.config import RunConfig, load_toml
from medtui.store.store import Store
from medtui.tui.app import MedtuiApp, make_app
from medtui.tui.screens.new import NewExperimentScreen
from medtui.tui.widgets.tasks import AvailableTasks, SequenceList, TaskSequence
from helpers import fast_config

EXPECTED = RunConfig(
    tasks=("synth-cxr-a", "synth-derm"),
    heldout=("synth-histo",),
    paradigm="continual",
    buffer_size=20,
    model="medtui-tiny",
    epochs=1,
    max_train=64,
    max_test=32,
    shots=8,
    device="cpu",
    amp="bf16",
    text_lr_scale=0.5,
)
SIZE = (80, 24)
#: The runs list under the form polls the store this often; fast only where the scheduler matters.
SLOW_POLL = 2.0

pytestmark = pytest.mark.anyio




def form(app: MedtuiApp) -> NewExperimentScreen:
    screen = app.screen
    assert isinstance(screen, NewExperimentScreen), f"the form is not on top: {screen!r}"
    return screen


def message(app: MedtuiApp) -> str:
    return str(form(app).query_one("#new-message", Static).render())


async def open_form(pilot: Pilot, config: RunConfig | None = None) -> NewExperimentScreen:
    """Open the form from the runs list (``n``), or prefilled with ``config`` as the app does for a repeat."""
    await pilot.pause()
    if config is None:
        await pilot.press("n")
    else:
        pilot.app.open_new(config)
    await pilot.pause()
    screen = form(pilot.app)
    assert screen.form_config() == (config or RunConfig())
    return screen


async def focus(pilot: Pilot, widget_id: str) -> None:
    """Tab until ``#widget_id`` has focus (the way a keyboard user gets there)."""
    ids = [w.id for w in pilot.app.screen.focus_chain]
    assert widget_id in ids, f"#{widget_id} cannot take focus"
    for _ in range(len(ids)):
        here = pilot.app.focused.id if pilot.app.focused is not None else None
        if here == widget_id:
            return
        ahead = (ids.index(widget_id) - ids.index(here)) % len(ids) if here in ids else 1
        await pilot.press("tab" if ahead <= len(ids) // 2 else "shift+tab")
    raise AssertionError(f"tab never reached #{widget_id}")


async def type_field(pilot: Pilot, key: str, text: str) -> None:
    """Replace a field's text by typing."""
    await focus(pilot, f"f-{key}")
    box = form(pilot.app).query_one(f"#f-{key}", Input)
    await pilot.press("end", "ctrl+u", *list(text))  # ctrl+u clears left of the cursor
    assert box.value == text


async def choose(pilot: Pilot, key: str, value: str) -> None:
    """Pick a Select option: open it, walk the options, enter."""
    await focus(pilot, f"f-{key}")
    select = form(pilot.app).query_one(f"#f-{key}", Select)
    for direction in ("up", "down"):
        for _ in range(4):
            if select.value == value:
                return
            await pilot.press("enter", direction, "enter")
    raise AssertionError(f"could not choose {value!r} in {key}: still {select.value!r}")


async def highlight(pilot: Pilot, list_id: str, name: str) -> None:
    """Move a task list's cursor to ``name`` with the arrow keys."""
    await focus(pilot, list_id)
    widget = form(pilot.app).query_one(f"#{list_id}")
    assert isinstance(widget, (AvailableTasks, SequenceList))
    await pilot.press("home")
    for _ in range(80):
        if widget.current == name:
            return
        await pilot.press("down")
    raise AssertionError(f"{name} not found in #{list_id}")


async def build_expected(pilot: Pilot) -> NewExperimentScreen:
    """Empty the default sequence, then build :data:`EXPECTED` through the lists and fields."""
    screen = form(pilot.app)
    await focus(pilot, "tasks-sequence")
    await pilot.press(*["x"] * (len(screen.seq.tasks) + len(screen.seq.heldout)))
    assert screen.seq.tasks == [] and screen.seq.heldout == []
    assert "no tasks given" in message(pilot.app)
    # added out of order, then moved: synth-cxr-a goes before synth-derm
    await highlight(pilot, "tasks-available", "synth-derm")
    await pilot.press("enter")
    await highlight(pilot, "tasks-available", "synth-cxr-a")
    await pilot.press("a")
    await highlight(pilot, "tasks-available", "synth-histo")
    await pilot.press("h")
    await highlight(pilot, "tasks-sequence", "synth-cxr-a")
    await pilot.press("left_square_bracket")
    assert screen.seq == TaskSequence(["synth-cxr-a", "synth-derm"], ["synth-histo"])
    await type_field(pilot, "buffer_size", "20")
    await type_field(pilot, "epochs", "1")
    await type_field(pilot, "device", "cpu")
    await type_field(pilot, "max_train", "64")
    await type_field(pilot, "max_test", "32")
    await type_field(pilot, "shots", "8")
    await type_field(pilot, "text_lr_scale", "0.5")
    await choose(pilot, "amp", "bf16")
    await pilot.pause()
    return screen


async def wait_workers(pilot: Pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def test_keyboard_builds_the_config(tmp_path: Path) -> None:
    app = make_app(tmp_path / "s.db", refresh_s=SLOW_POLL)
    async with app.run_test(size=SIZE) as pilot:
        await open_form(pilot)
        screen = await build_expected(pilot)
        assert screen.form_config() == EXPECTED
        # the sequence list shows the order, then the held-out task apart
        seq = screen.query_one(SequenceList)
        assert [o.id for o in seq.options if o.id] == ["train:synth-cxr-a", "train:synth-derm", "heldout:synth-histo"]
        assert screen.resolved is not None and screen.resolved.lr == 1e-3 and screen.resolved.name
        assert message(app).startswith("✓") and "8 shots per class" in message(app)
        assert not screen.query_one("#new-launch", Button).disabled
        # h in the sequence switches a task between trained and held out; x removes it
        await highlight(pilot, "tasks-sequence", "synth-derm")
        await pilot.press("h")
        assert screen.seq == TaskSequence(["synth-cxr-a"], ["synth-histo", "synth-derm"])
        await pilot.press("x")
        assert "synth-derm" not in screen.form_config().columns


async def test_invalid_settings_show_the_error_and_block_launch(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    app = make_app(db, refresh_s=SLOW_POLL)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot)
        await type_field(pilot, "buffer_size", "20")
        await choose(pilot, "paradigm", "joint")
        await pilot.press("x")  # a task key: not for the settings
        assert screen.seq.tasks == list(RunConfig().tasks)
        assert "only applies to the continual paradigm" in message(app)
        assert screen.query_one("#new-launch", Button).disabled
        assert screen.query_one("#new-queue", Button).disabled
        assert screen.query_one("#row-buffer_size").has_class("-inactive")
        await pilot.press("f5", "f6")
        await wait_workers(pilot)
        assert isinstance(app.screen, NewExperimentScreen)
        await choose(pilot, "paradigm", "continual")
        assert message(app).startswith("✓")
        await type_field(pilot, "epochs", "0")
        assert "epochs must be > 0" in message(app)
        assert screen.query_one("#new-launch", Button).disabled
        await type_field(pilot, "epochs", "2")
        await type_field(pilot, "text_lr_scale", "0")
        assert "text lr scale must be in (0, 100]" in message(app)
        await type_field(pilot, "text_lr_scale", "1")
        await focus(pilot, "f-model")
        await pilot.press("end", "backspace")
        assert "unknown model 'medtui-tin' (did you mean medtui-tiny" in message(app)
        await pilot.press("y")
        assert not screen.query_one("#new-launch", Button).disabled
    with Store(db) as s:
        assert s.list_runs() == []


async def test_unknown_task_in_a_prefilled_config_is_reported(tmp_path: Path) -> None:
    app = make_app(tmp_path / "s.db", refresh_s=SLOW_POLL)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_new(RunConfig(tasks=("synth-cxr-a", "synth-dem")))
        await pilot.pause()
        assert "unknown task 'synth-dem' (did you mean synth-derm" in message(app)
        assert form(app).resolved is None


async def test_save_then_load_gives_the_same_config(tmp_path: Path) -> None:
    app = make_app(tmp_path / "s.db", refresh_s=SLOW_POLL)
    path = tmp_path / "my-run.toml"  # the tests run in tmp_path
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot, EXPECTED)
        await type_field(pilot, "lr", "0.0005")
        await type_field(pilot, "name", "my run")
        made = screen.form_config()
        assert made == replace(EXPECTED, lr=0.0005, name="my run")
        await pilot.press("f7")
        await pilot.pause()
        box = screen.query_one("#new-path", Input)
        assert app.focused is box and box.value == str(path)  # suggested: the name, in the working directory
        await pilot.press("enter")
        await wait_workers(pilot)
        assert path.is_file()
        assert load_toml(path) == made
        # change the form, then load the file back into it
        await type_field(pilot, "epochs", "7")
        await focus(pilot, "tasks-sequence")
        await pilot.press("x")
        assert screen.form_config() != made
        await pilot.press("f8")
        await pilot.pause()
        assert box.value == str(path)  # the last file used
        await pilot.press("enter")
        await wait_workers(pilot)
        assert screen.form_config() == made
        assert screen.query_one("#f-epochs", Input).value == "1"
        assert message(app).startswith("✓ my run")


async def test_loading_a_malformed_file_shows_the_error_inline(tmp_path: Path) -> None:
    app = make_app(tmp_path / "s.db", refresh_s=SLOW_POLL)
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = [\n", encoding="utf-8")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('paradigm = "continual"\nbufer_size = 3\n', encoding="utf-8")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot)
        before = screen.form_config()
        for path, error in ((bad, "bad.toml: malformed TOML"), (unknown, "unknown key 'bufer_size' (did you mean buffer_size")):
            await pilot.press("f8")
            await pilot.pause()
            box = screen.query_one("#new-path", Input)
            # first the working directory, then the file that failed (to fix a typo)
            assert box.value in (f"{tmp_path}/", str(bad))
            await pilot.press("ctrl+u", *list(path.name), "enter")  # relative to the working directory
            await wait_workers(pilot)
            assert error in message(app)
            assert screen.query_one("#new-message").has_class("-error")
            assert screen.form_config() == before


async def test_queue_stores_a_queued_run(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with Store(db) as s:
        s.set_setting("max_parallel", "1")
        # a live "running" run holds the only slot, so the queued one must wait
        busy = s.create_run(fast_config(name="busy"), status="running")
        s.update_run(busy, pid=os.getpid(), host=socket.gethostname(), started_at=time.time(), heartbeat_at=time.time())
    app = make_app(db, refresh_s=0.2)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot, EXPECTED)
        await pilot.press("f6")
        await wait_workers(pilot)
        assert isinstance(app.screen, NewExperimentScreen)  # the form stays, to queue a variant
        with Store(db) as s:
            queued = s.list_runs(status="queued")
            assert len(queued) == 1
            assert s.config(queued[0]["id"]) == screen.resolved
            assert s.get_run(busy)["status"] == "running"


async def test_launch_starts_a_worker_that_finishes(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    app = make_app(db, refresh_s=0.2)
    opened: list[int] = []
    async with app.run_test(size=SIZE) as pilot:
        app.open_run = opened.append  # type: ignore[method-assign]  # the detail screen is tested elsewhere
        await open_form(pilot, EXPECTED)
        await pilot.press("f5")
        await wait_workers(pilot)
        assert len(opened) == 1
        assert not isinstance(app.screen, NewExperimentScreen)
    run_id = opened[0]
    deadline = time.time() + 120
    while True:
        with Store(db) as s:
            run = s.get_run(run_id)
        if run["status"] not in ("queued", "running") or time.time() > deadline:
            break
        time.sleep(0.2)
    assert run["status"] == "finished", f"{run['status']}: {run['error']}"
    assert run["pid"] is None or run["pid"] != os.getpid()
    with Store(db) as s:
        cfg = s.config(run_id)
        assert (cfg.tasks, cfg.heldout, cfg.buffer_size, cfg.max_train) == (EXPECTED.tasks, EXPECTED.heldout, 20, 64)
        assert len(s.matrix(run_id)["rows"]) == 3


def test_the_form_and_its_check_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from medtui.config import RunConfig\n"
        "from medtui.tui.screens.new import check_config\n"
        "from medtui.models.catalog import architectures\n"
        "check_config(RunConfig())\n"
        "assert 'ViT-B-16' in architectures()  # what the model field offers\n"
        "print([m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'open_clip'))])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


async def test_method_options_are_drawn_from_the_method(tmp_path: Path) -> None:
    app = make_app(tmp_path / "s.db", refresh_s=SLOW_POLL)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_form(pilot)
        assert not screen.query("#method-opts Input")  # naive has no options
        await choose(pilot, "method", "lwf")
        await pilot.pause()
        boxes = {b.id: b.value for b in screen.query("#method-opts Input").results(Input)}
        assert boxes == {"o-temperature": "2.0", "o-weight": "10.0"}
        await focus(pilot, "o-weight")
        assert "weight:" in str(screen.query_one("#new-hint", Static).render())
        await pilot.press("end", "ctrl+u", *"abc")
        assert "option 'weight' must be a float, got 'abc'" in message(app)
        await pilot.press("ctrl+u", "3")
        assert screen.form_config().method_opts == {"temperature": 2.0, "weight": 3}
        assert screen.resolved is not None and screen.resolved.method_opts["weight"] == 3.0
        await choose(pilot, "paradigm", "joint")
        assert "applies to continual runs only" in message(app)
        assert screen.query_one("#row-method").has_class("-inactive")
        assert not screen.query_one("#row-joint_sampling").has_class("-inactive")
