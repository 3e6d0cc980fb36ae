"""A study made from the new-experiment form (F9): fields checked as you type, F5 stores and queues, the Study screen opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import new_app, until
from textual.pilot import Pilot
from textual.widgets import Input, Static, TextArea

from medtui.config import RunConfig
from medtui.store.store import Store
from medtui.study.store import list_studies, study_runs
from medtui.tui.screens.study_new import NewStudyScreen

pytestmark = pytest.mark.anyio
BASE = RunConfig(tasks=("synth-cxr-a", "synth-derm"), epochs=1, max_train=64, max_test=32, device="cpu")


@pytest.fixture()
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Workers the scheduler would start, recorded instead of started."""
    out: list[int] = []
    monkeypatch.setattr("medtui.jobs.queue.spawn", lambda path, run_id, gpu=None, threads=None: out.append(run_id) or 4242)
    return out


def verdict(screen: NewStudyScreen) -> str:
    return str(screen.query_one("#study-verdict", Static).render())


async def open_dialog(pilot: Pilot) -> NewStudyScreen:
    """The new-experiment form prefilled with BASE, then f9."""
    await pilot.pause()
    pilot.app.open_new(BASE)
    await pilot.pause()
    await pilot.press("f9")
    await until(pilot, lambda: isinstance(pilot.app.screen, NewStudyScreen), what="the study dialog")
    return pilot.app.screen


async def test_a_study_from_the_form_is_checked_stored_queued_and_shown(tmp_path: Path, spawned: list[int]) -> None:
    db = tmp_path / "s.db"
    app = new_app(db, refresh_s=2.0)
    async with app.run_test(size=(80, 24)) as pilot:
        dialog = await open_dialog(pilot)
        await until(pilot, lambda: "give the study a name" in verdict(dialog), what="the empty name refused")
        await pilot.press(*"sweep")  # the name has focus
        await pilot.press("tab", "backspace", "0", "comma", "space", "1")  # seeds: 0, 1
        dialog.query_one("#study-grid", TextArea).load_text("bufer_size = 0, 20")
        await until(pilot, lambda: "did you mean buffer_size" in verdict(dialog), what="the misspelt axis refused")
        await pilot.press("f5")  # refused: nothing is stored
        await pilot.pause()
        assert isinstance(app.screen, NewStudyScreen)
        with Store(db) as s:
            assert list_studies(s) == [] and s.list_runs() == []
        dialog.query_one("#study-grid", TextArea).load_text("buffer_size = 0, 20\nmethod = naive, lwf")
        await until(pilot, lambda: "4 cell(s) × 2 run(s) (seeds × orders) = 8 runs" in verdict(dialog), what="the study's size")
        assert dialog.query_one("#study-seeds", Input).value == "0, 1"
        await pilot.press("f5")
        await until(pilot, lambda: type(app.screen).__name__ == "StudyScreen" and app.screen.result is not None, what="the Study screen")
        with Store(db) as s:
            (study,) = list_studies(s)
            runs = study_runs(s, study["id"])
        assert study["name"] == "sweep" and len(runs) == 8
        assert len(spawned) == 1 and spawned[0] in [r["id"] for r in runs], "one slot (max_parallel 1): one run started, the rest queued"
        assert "sweep" in str(app.screen.query_one("#study-title").render())
        await pilot.press("escape")
        assert type(app.screen).__name__ == "RunsScreen", "the form closed behind the study"


async def test_escape_leaves_the_form_as_it_was(tmp_path: Path, spawned: list[int]) -> None:
    db = tmp_path / "s.db"
    app = new_app(db, refresh_s=2.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_dialog(pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ == "NewExperimentScreen"
        with Store(db) as s:
            assert list_studies(s) == [] and not spawned
