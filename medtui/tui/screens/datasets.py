"""The Datasets screen: every task by domain; a selected task's counts, prompts and sample images.

Listing and loading happen in thread workers (a MedMNIST file can take seconds to
decompress); they post :class:`TasksListed`, :class:`TaskLoaded` or
:class:`TaskLoadFailed`, and the handlers own the tree and the detail pane. The
screen never downloads: a missing MedMNIST file shows the registry's one-line error.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static, Tree

from medtui.data.base import SPLITS, TaskSpec
from medtui.tui.messages import TaskEntry, TaskLoaded, TaskLoadFailed, TaskSummary, TasksListed
from medtui.tui.widgets.images import SampleGallery, downscale

#: Sample images shown per class, and their size in pixels once downscaled.
SAMPLES_PER_CLASS = 2
SAMPLE_PX = 16
#: Tasks bigger than this once decoded are not loaded: a preview must not exhaust memory.
LOAD_LIMIT_BYTES = 2_000_000_000
#: The MedMNIST size always listed; other sizes appear only when their file is on disk.
BASE_SIZE = 28


def list_tasks(data_dir: Path | None = None) -> tuple[Path, list[TaskEntry]]:
    """The tasks to list: all but MedMNIST sizes above 28 px whose file is absent."""
    from medtui.data.registry import TaskRegistry

    registry = TaskRegistry(data_dir)
    entries = []
    for spec in registry.specs():
        ok = registry.available(spec)
        if spec.source == "medmnist" and spec.image_size != BASE_SIZE and not ok:
            continue  # four sizes of eleven sets would bury the list; show what is on disk
        entries.append(TaskEntry(spec, ok))
    return registry.data_dir, entries


def summarise(name: str, data_dir: Path | None = None) -> TaskSummary:
    """Load ``name`` (never downloading) and keep its counts and a few downscaled samples per class."""
    from medtui.data.registry import TaskRegistry

    t0 = time.perf_counter()
    data = TaskRegistry(data_dir).load(name, download=False)
    split = data.splits["train"]
    samples = []
    for c, cls in enumerate(data.spec.classes):
        # the first few of each class: deterministic, so screenshots stay stable
        idx = np.flatnonzero(split.labels == c)[:SAMPLES_PER_CLASS]
        samples.append((cls, [downscale(split.images[i], SAMPLE_PX) for i in idx]))
    h, w, ch = split.images.shape[1:]
    return TaskSummary(name, data.counts(), (h, w, ch), samples, time.perf_counter() - t0)


def memory_estimate(spec: TaskSpec) -> int | None:
    """Roughly how many bytes loading ``spec`` takes (all splits decoded), or None when unknown."""
    n = sum(int(spec.options.get(f"n_{s}", 0)) for s in SPLITS)
    return n * spec.image_size**2 * spec.channels if n else None


def fmt_bytes(n: float) -> str:
    """``611.5 KB``, ``11.9 GB``."""
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def task_label(entry: TaskEntry) -> Text:
    """A tree label: name, then ``✓``/``✗`` for a MedMNIST file on disk or missing, or the user source."""
    spec = entry.spec
    label = Text(spec.name, style="" if entry.available else "dim")
    if spec.source == "medmnist":
        label.append(" ✓" if entry.available else " ✗", style="green" if entry.available else "red")
    elif spec.source != "synthetic":
        label.append(f" ({spec.source})", style="cyan")
    return label


def counts_table(spec: TaskSpec, counts: dict[str, list[int]]) -> Table:
    """Samples per class (rows) and split (columns), with a total row."""
    splits = [s for s in SPLITS if s in counts] + [s for s in counts if s not in SPLITS]
    t = Table(box=None, pad_edge=False, show_footer=True, header_style="bold", footer_style="bold", expand=False)
    t.add_column("class", footer="total", overflow="fold")  # a long class name wraps
    for s in splits:
        # counts never shrink: a long class name wraps instead
        t.add_column(s, footer=str(sum(counts[s])), justify="right", no_wrap=True, min_width=max(len(s), len(str(sum(counts[s])))))
    for c, cls in enumerate(spec.classes):
        t.add_row(cls, *(str(counts[s][c]) for s in splits))
    return t


def spec_header(entry: TaskEntry) -> Text:
    """Name, domain, source and description of a task."""
    spec = entry.spec
    text = Text.assemble((spec.name, "bold"), f"  {spec.domain} · {spec.source} · {spec.image_size}px")
    text.append(f" · {'RGB' if spec.channels == 3 else 'gray'} · {spec.n_classes} classes\n")
    text.append(spec.description or "", style="dim")
    if spec.source == "medmnist":
        text.append(f"\nfile {spec.options.get('file')}: ")
        text.append("on disk" if entry.available else "missing", style="green" if entry.available else "red")
    return text


def templates_text(spec: TaskSpec) -> Text:
    """The prompt templates, ``{}`` standing for the class name."""
    text = Text.assemble(("prompts", "bold"), ("  ({} is the class name)\n", "dim"))
    for t in spec.templates:
        text.append(f"  {t}\n")
    text.rstrip()
    return text


class DatasetsScreen(Screen):
    """Tasks grouped by domain on the left; the selected task's details on the right."""

    CSS_PATH = "datasets.tcss"
    AUTO_FOCUS = "#ds-tree"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "select", "Load task"),
        Binding("r", "rescan", "Rescan folder"),
    ]

    def __init__(self, data_dir: str | Path | None = None) -> None:
        super().__init__()
        self.data_dir = Path(data_dir) if data_dir else None
        self.entries: dict[str, TaskEntry] = {}
        self.summaries: dict[str, TaskSummary] = {}
        self.errors: dict[str, str] = {}
        self.current: str | None = None
        self.loading: str | None = None

    def compose(self) -> ComposeResult:
        """Title line; the task tree beside the detail pane; the footer."""
        yield Static("[b]Datasets[/b]  reading the task registry…", id="ds-title")
        with Horizontal(id="ds-body"):
            tree: Tree[str] = Tree("tasks", id="ds-tree")
            tree.show_root = False
            yield tree
            with VerticalScroll(id="ds-detail"):
                yield Static("Choose a task with ↑↓ and press enter to load it.", id="ds-header")
                yield Static("", id="ds-status")
                yield Static("", id="ds-counts")
                yield Static("", id="ds-templates")
                yield Static("", id="ds-samples")
        yield Footer()

    def on_mount(self) -> None:
        """List the tasks in a thread (availability checks touch the disk)."""
        self.scan()

    # -- workers (read only, post messages) ------------------------------------------------------
    @work(thread=True, exclusive=True, group="ds-scan")
    def scan(self) -> None:
        """List every task and whether its data is on disk."""
        data_dir, entries = list_tasks(self.data_dir)
        self.post_message(TasksListed(data_dir, entries))

    @work(thread=True, exclusive=True, group="ds-load")
    def load_task(self, name: str) -> None:
        """Load one task and summarise it; a failure posts the registry's message."""
        from medtui.errors import MedtuiError

        try:
            self.post_message(TaskLoaded(summarise(name, self.data_dir)))
        except MedtuiError as exc:
            self.post_message(TaskLoadFailed(name, " ".join(str(exc).split())))
        except Exception as exc:  # noqa: BLE001 - a broken user file must not take the app down
            self.post_message(TaskLoadFailed(name, " ".join(f"{type(exc).__name__}: {exc}".split())))

    # -- handlers (own the state) -----------------------------------------------------------------
    @on(TasksListed)
    def _listed(self, message: TasksListed) -> None:
        self.entries = {e.spec.name: e for e in message.entries}
        self.current = None  # the rebuilt tree highlights its first task: show it afresh
        tree = self.query_one("#ds-tree", Tree)
        tree.clear()
        domains: dict[str, list[TaskEntry]] = {}
        for e in message.entries:
            domains.setdefault(e.spec.domain, []).append(e)
        for domain, entries in domains.items():
            node = tree.root.add(Text.assemble((domain, "bold"), (f" ({len(entries)})", "dim")), data=None, expand=True)
            for e in entries:
                task = node.add(task_label(e), data=e.spec.name)
                for cls in e.spec.classes:
                    task.add_leaf(Text(cls, style="italic"), data=e.spec.name)
        n_med = sum(e.spec.source == "medmnist" for e in message.entries)
        found = sum(e.spec.source == "medmnist" and e.available for e in message.entries)
        self.query_one("#ds-title", Static).update(
            Text.assemble(
                ("Datasets", "bold"),
                f"  {len(message.entries)} tasks · {len(domains)} domains · MedMNIST files ",
                (f"✓{found}", "green"),
                " ",
                (f"✗{n_med - found}", "red"),
                " · ",
                (str(message.data_dir), "italic"),
            )
        )
        tree.move_cursor_to_line(1)  # the first task, under the first domain

    @on(Tree.NodeHighlighted, "#ds-tree")
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        name = event.node.data
        if name is not None and name != self.current:
            self.show(name)

    @on(Tree.NodeSelected, "#ds-tree")
    def _selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data is not None:
            self.select(event.node.data)

    @on(TaskLoaded)
    def _loaded(self, message: TaskLoaded) -> None:
        self.summaries[message.summary.name] = message.summary
        self.errors.pop(message.summary.name, None)
        if self.loading == message.summary.name:
            self.loading = None
        if self.current == message.summary.name:
            self.show(message.summary.name)

    @on(TaskLoadFailed)
    def _failed(self, message: TaskLoadFailed) -> None:
        self.errors[message.name] = message.error
        if self.loading == message.name:
            self.loading = None
        if self.current == message.name:
            self.show(message.name)

    # -- actions ------------------------------------------------------------------------------------
    def select(self, name: str) -> None:
        """Show task ``name`` and load its data (once; a failed load is retried)."""
        size = memory_estimate(self.entries[name].spec) if name in self.entries else None
        if size and size > LOAD_LIMIT_BYTES:
            self.errors[name] = f"{name} is too large to preview here (≈ {fmt_bytes(size)} decoded); its 28 px version shows the same classes"
            self.show(name)
            return
        if name not in self.summaries and self.loading != name:
            self.loading = name
            self.errors.pop(name, None)
            self.load_task(name)
        self.show(name)

    def action_select(self) -> None:
        """Load the task under the cursor."""
        node = self.query_one("#ds-tree", Tree).cursor_node
        if node is not None and node.data is not None:
            self.select(node.data)

    def action_rescan(self) -> None:
        """List the tasks again (after files were added to the data folder)."""
        self.summaries.clear()
        self.errors.clear()
        self.scan()

    def show(self, name: str) -> None:
        """Fill the detail pane with what is known of ``name``: spec always, data once loaded."""
        entry = self.entries.get(name)
        if entry is None:
            return
        self.current = name
        spec = entry.spec
        summary = self.summaries.get(name)
        self.query_one("#ds-header", Static).update(spec_header(entry))
        self.query_one("#ds-templates", Static).update(templates_text(spec))
        status = self.query_one("#ds-status", Static)
        status.set_class(name in self.errors, "-error")
        if name in self.errors:
            status.update(Text(f"✗ {self.errors[name]}"))
        elif self.loading == name:
            status.update(Text(f"loading {name}…", style="italic"))
        elif summary is None:
            size = memory_estimate(spec)
            hint = "press enter to load counts and samples" + (f" (≈ {fmt_bytes(size)} in memory)" if size else "")
            status.update(Text(hint, style="dim"))
        else:
            h, w, c = summary.shape
            status.update(Text(f"loaded in {summary.seconds:.2f} s · images {h}×{w}×{c}", style="dim"))
        counts = self.query_one("#ds-counts", Static)
        samples = self.query_one("#ds-samples", Static)
        counts.display = samples.display = summary is not None
        if summary is not None:
            counts.update(counts_table(spec, summary.counts))
            samples.update(self.gallery(summary))

    @staticmethod
    def gallery(summary: TaskSummary) -> RenderableType:
        """The sample images, a caption per class."""
        return Group(Text(f"samples (train, {SAMPLES_PER_CLASS} per class)", style="bold"), SampleGallery(summary.samples))
