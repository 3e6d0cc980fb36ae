"""The Datasets screen (tasks by domain, counts, prompts, samples) and the half-block image renderer."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.color import Color
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import Static, Tree

from medtui.data.registry import TaskRegistry
from medtui.tui.app import MedtuiApp, make_app
from medtui.tui.screens.datasets import DatasetsScreen
from medtui.tui.widgets.images import HALF_BLOCK, HalfBlockImage, SampleGallery, downscale

SHARED_MEDMNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medmnist"
SYNTHETIC = ("synth-cxr-a", "synth-cxr-b", "synth-derm", "synth-histo", "synth-blood")




@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty MedMNIST folder in ``$MEDTUI_DATA_DIR``, so the user's cache never leaks in."""
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.setenv("MEDTUI_DATA_DIR", str(d))
    return d


async def wait_for(pilot: Pilot, cond: Any, what: str, timeout: float = 20.0) -> None:
    """Let the app run until ``cond()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def open_datasets(app: MedtuiApp, pilot: Pilot) -> DatasetsScreen:
    """From the runs list, press ``d`` and wait until the task tree is filled."""
    await pilot.pause()
    await pilot.press("d")
    await wait_for(pilot, lambda: isinstance(app.screen, DatasetsScreen) and bool(app.screen.entries), "the task list")
    await pilot.pause()
    return app.screen  # type: ignore[return-value]


def tree_nodes(screen: DatasetsScreen) -> list[Any]:
    """Every node of the task tree, depth first."""
    out, todo = [], list(screen.query_one("#ds-tree", Tree).root.children)
    while todo:
        node = todo.pop(0)
        out.append(node)
        todo[:0] = list(node.children)
    return out


async def choose(pilot: Pilot, screen: DatasetsScreen, name: str) -> None:
    """Put the cursor on task ``name`` and press enter; wait until it loaded or failed."""
    tree = screen.query_one("#ds-tree", Tree)
    node = next(n for n in tree_nodes(screen) if n.data == name and n.allow_expand)
    tree.move_cursor(node)
    await pilot.pause()
    await pilot.press("enter")
    await wait_for(pilot, lambda: name in screen.summaries or name in screen.errors, f"{name} to load")
    await pilot.pause()


def text_of(widget: Static, width: int = 60) -> str:
    """What a Static shows, as plain text at ``width`` columns."""
    return render_text(widget.content, width)


def render_text(renderable: Any, width: int) -> str:
    """A Rich renderable as plain text at ``width`` columns."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def count_rows(table_text: str, classes: tuple[str, ...]) -> dict[str, list[int]]:
    """Parse the counts table: the numbers on each class's line (class names fit on one line at width 60)."""
    rows = {}
    for line in table_text.splitlines():
        for cls in (*classes, "total"):
            if line.startswith(cls + " "):
                rows[cls] = [int(x) for x in line[len(cls):].split()]
    return rows


@pytest.mark.anyio
async def test_lists_synthetic_tasks_and_domains(tmp_path: Path, data_dir: Path) -> None:
    app = make_app(tmp_path / "s.db", refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_datasets(app, pilot)
        nodes = tree_nodes(screen)
        domains = [n.label.plain for n in nodes if n.data is None]
        tasks = {n.data: n.label.plain for n in nodes if n.data is not None and n.allow_expand}
        for domain in ("chest x-ray", "dermoscopy", "pathology", "blood cell microscopy", "breast ultrasound"):
            assert any(d.startswith(domain + " (") for d in domains), (domain, domains)
        assert set(SYNTHETIC) <= set(tasks)
        # a synthetic task sits under its domain, with its classes as leaves
        derm = next(n for n in nodes if n.data is None and n.label.plain.startswith("dermoscopy"))
        assert "synth-derm" in [c.data for c in derm.children]
        leaves = [c.label.plain for c in next(n for n in nodes if n.data == "synth-blood" and n.allow_expand).children]
        assert leaves == ["neutrophil", "lymphocyte", "eosinophil"]
        # MedMNIST: 28 px listed and marked missing; larger sizes only when found on disk
        assert "✗" in tasks["dermamnist"] and "✗" in tasks["breastmnist"]
        assert not any(name.endswith(("_64", "_128", "_224")) for name in tasks)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, DatasetsScreen)


@pytest.mark.anyio
async def test_synth_derm_counts_prompts_and_samples(tmp_path: Path, data_dir: Path) -> None:
    expected = TaskRegistry().load("synth-derm").counts()
    spec = TaskRegistry().get("synth-derm")
    app = make_app(tmp_path / "s.db", refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_datasets(app, pilot)
        await choose(pilot, screen, "synth-derm")
        assert "synth-derm" not in screen.errors
        table = text_of(screen.query_one("#ds-counts", Static))
        rows = count_rows(table, spec.classes)
        for c, cls in enumerate(spec.classes):
            assert rows[cls] == [expected[s][c] for s in ("train", "val", "test")], table
        assert rows["total"] == [sum(expected[s]) for s in ("train", "val", "test")]
        prompts = text_of(screen.query_one("#ds-templates", Static), width=100)
        assert all(t in prompts for t in spec.templates)
        samples = screen.query_one("#ds-samples", Static)
        assert samples.display
        shown = text_of(samples, width=80)
        # 2 classes x 2 images x 16 columns x 8 lines of half blocks, captioned by class
        assert shown.count(HALF_BLOCK) == 2 * 2 * 16 * 8
        assert "benign nevus" in shown and "melanoma" in shown
        assert HALF_BLOCK in app.export_screenshot() or screen.query_one("#ds-detail").max_scroll_y > 0
        # uneven counts (34/33/33 in val) catch a table whose rows are shuffled
        blood = TaskRegistry().load("synth-blood")
        await choose(pilot, screen, "synth-blood")
        rows = count_rows(text_of(screen.query_one("#ds-counts", Static)), blood.spec.classes)
        assert [rows[cls] for cls in blood.spec.classes] == [list(r) for r in zip(*blood.counts().values())]


@pytest.mark.anyio
async def test_breastmnist_real_counts(tmp_path: Path, data_dir: Path) -> None:
    source = SHARED_MEDMNIST / "breastmnist.npz"
    if not source.is_file():
        pytest.skip(f"real MedMNIST file not found: {source}")
    shutil.copy(source, data_dir / "breastmnist.npz")
    app = make_app(tmp_path / "s.db", refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_datasets(app, pilot)
        assert "✓" in next(n.label.plain for n in tree_nodes(screen) if n.data == "breastmnist")
        await choose(pilot, screen, "breastmnist")
        assert "breastmnist" not in screen.errors, screen.errors
        rows = count_rows(text_of(screen.query_one("#ds-counts", Static), width=70), screen.entries["breastmnist"].spec.classes)
        assert rows["total"] == [546, 78, 156]
        assert rows["malignant tumor"] == [147, 21, 42]
        assert screen.summaries["breastmnist"].shape == (28, 28, 1)


@pytest.mark.anyio
async def test_missing_medmnist_file_shows_error(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from medtui.data import medmnist

    attempts: list[object] = []

    def no_download(*args: object) -> None:
        attempts.append(args)
        raise OSError("the Datasets screen must never download")

    monkeypatch.setattr(medmnist, "_download", no_download)
    app = make_app(tmp_path / "s.db", refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_datasets(app, pilot)
        await choose(pilot, screen, "dermamnist")
        error = screen.errors["dermamnist"]
        assert not attempts
        assert "\n" not in error and "dermamnist.npz not found" in error and str(data_dir) in error
        status = screen.query_one("#ds-status", Static)
        assert status.has_class("-error")
        assert "dermamnist.npz not found" in text_of(status, width=400)
        assert not screen.query_one("#ds-counts", Static).display
        # the screen still works: another task loads after the failure
        await choose(pilot, screen, "synth-cxr-a")
        assert not status.has_class("-error")
        assert screen.query_one("#ds-counts", Static).display


# -- the half-block renderer ------------------------------------------------------------------


def test_half_block_maps_top_pixel_to_fg_and_bottom_to_bg() -> None:
    img = np.array(
        [[[255, 0, 0], [0, 0, 255]],
         [[0, 255, 0], [10, 20, 30]]],
        dtype=np.uint8,
    )
    lines = HalfBlockImage(img).lines()
    assert len(lines) == 1 and [s.text for s in lines[0]] == [HALF_BLOCK, HALF_BLOCK]
    left, right = (s.style for s in lines[0])
    assert left.color == Color.from_rgb(255, 0, 0) and left.bgcolor == Color.from_rgb(0, 255, 0)
    assert right.color == Color.from_rgb(0, 0, 255) and right.bgcolor == Color.from_rgb(10, 20, 30)


def test_half_block_grayscale_and_odd_height() -> None:
    img = np.array([[7, 200], [100, 0], [50, 255]], dtype=np.uint8)  # H x W: one channel
    image = HalfBlockImage(img)
    assert (image.width, image.height) == (2, 2)
    lines = image.lines()
    top = lines[0][0].style
    assert top.color == Color.from_rgb(7, 7, 7) and top.bgcolor == Color.from_rgb(100, 100, 100)
    last = lines[1][1].style
    assert last.color == Color.from_rgb(255, 255, 255) and last.bgcolor is None  # no row below


def test_console_output_has_one_cell_per_pixel() -> None:
    img = np.zeros((16, 16, 3), dtype=np.uint8)
    assert render_text(HalfBlockImage(img), 40).splitlines() == [HALF_BLOCK * 16] * 8


def test_downscale_box_average() -> None:
    img = np.zeros((32, 32, 1), dtype=np.uint8)
    img[0, 0, 0] = 200  # one bright pixel in the first 2x2 box
    img[2:4, 2:4, 0] = 80
    small = downscale(img, 16)
    assert small.shape == (16, 16, 1)
    assert small[0, 0, 0] == 50 and small[1, 1, 0] == 80 and small[2:, :, 0].max() == 0
    assert downscale(np.full((28, 28, 3), 9, np.uint8), 16).shape == (16, 16, 3)
    assert downscale(np.full((8, 8), 3, np.uint8), 16).shape == (16, 16, 1)  # small images are enlarged


def test_gallery_wraps_groups_to_width() -> None:
    img = np.zeros((16, 16, 1), dtype=np.uint8)
    gallery = SampleGallery([("a", [img, img]), ("b", [img, img])])

    wide, narrow = render_text(gallery, 80).splitlines(), render_text(gallery, 40).splitlines()
    assert len(wide) == 1 + 8 and wide[1].count(HALF_BLOCK) == 64  # both groups on one row
    assert len(narrow) == 2 * (1 + 8) + 1 and narrow[1].count(HALF_BLOCK) == 32  # one group per row


@pytest.mark.anyio
async def test_large_sizes_listed_when_on_disk_and_not_loaded(tmp_path: Path, data_dir: Path) -> None:
    # an (empty) file is enough to be listed; at ~12 GB decoded the screen must refuse to load it
    (data_dir / "tissuemnist_224.npz").write_bytes(b"")
    app = make_app(tmp_path / "s.db", refresh_s=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_datasets(app, pilot)
        names = [n.data for n in tree_nodes(screen) if n.allow_expand]
        assert "tissuemnist_224" in names and "tissuemnist_64" not in names
        await choose(pilot, screen, "tissuemnist_224")
        assert "too large to preview" in screen.errors["tissuemnist_224"]
        assert "tissuemnist_224" not in screen.summaries
