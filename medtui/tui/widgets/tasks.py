"""The task picker of the new-experiment form: the tasks on offer, and the sequence being built.

:class:`TaskSequence` is the plain state (training order + held-out tasks) with the edits
the form allows; :class:`AvailableTasks` lists the registry grouped by domain and
:class:`SequenceList` shows the sequence; :class:`TaskPicker` holds both lists and the
sequence, applies the screen's task keys to the list in use, and posts
:class:`TaskPicker.Changed` after each edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from medtui.data.base import TaskSpec
from medtui.errors import MedtuiError

#: Marks in the task list: in the training sequence, held out, not on disk yet.
MARK_TRAIN = "✓"
MARK_HELDOUT = "◇"
MARK_MISSING = "↓"


@dataclass
class TaskSequence:
    """The training sequence (order matters) and the held-out tasks (evaluated, never trained)."""

    tasks: list[str] = field(default_factory=list)
    heldout: list[str] = field(default_factory=list)

    def where(self, name: str) -> str | None:
        """``"train"``, ``"heldout"`` or None."""
        if name in self.tasks:
            return "train"
        return "heldout" if name in self.heldout else None

    def add(self, name: str, heldout: bool = False) -> str | None:
        """Append a task to the sequence (or the held-out set); returns a message when refused."""
        group = self.where(name)
        if group is not None:
            return f"{name} is already {'held out' if group == 'heldout' else 'in the sequence'}"
        (self.heldout if heldout else self.tasks).append(name)
        return None

    def remove(self, name: str) -> None:
        """Drop a task from wherever it is."""
        for group in (self.tasks, self.heldout):
            if name in group:
                group.remove(name)

    def move(self, name: str, delta: int) -> None:
        """Move a task up (``-1``) or down (``+1``) within its own group."""
        group = self.tasks if name in self.tasks else self.heldout
        if name not in group:
            return
        i = group.index(name)
        j = max(0, min(len(group) - 1, i + delta))
        group.insert(j, group.pop(i))

    def toggle_heldout(self, name: str) -> None:
        """Move a trained task to the held-out set or back to the end of the sequence."""
        if name in self.tasks:
            self.tasks.remove(name)
            self.heldout.append(name)
        elif name in self.heldout:
            self.heldout.remove(name)
            self.tasks.append(name)


def task_choices(specs: Iterable[TaskSpec], available: dict[str, bool]) -> list[tuple[str, list[TaskSpec]]]:
    """Tasks worth offering, grouped by domain in registry order.

    Every synthetic and user task; the MedMNIST 28 px sets (downloadable), and larger
    MedMNIST sizes only when their file is already on disk (a 224 px download is gigabytes).
    """
    groups: dict[str, list[TaskSpec]] = {}
    for spec in specs:
        if spec.source == "medmnist" and spec.image_size != 28 and not available.get(spec.name, False):
            continue
        groups.setdefault(spec.domain, []).append(spec)
    return list(groups.items())


def _count(n: object) -> str:
    if not isinstance(n, int):
        return ""
    return f"{n / 1000:.0f}k" if n >= 10_000 else f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def task_prompt(spec: TaskSpec, where: str | None, on_disk: bool) -> Text:
    """One line of the task list: mark, name, classes, train size, and ↓ for a file still to download."""
    mark = {"train": MARK_TRAIN, "heldout": MARK_HELDOUT}.get(where or "", " ")
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{mark} ", style="bold green" if where == "train" else "bold magenta")
    text.append(f"{spec.name:<18}", style="dim" if where else "")
    text.append(f" {spec.n_classes:>2}c {_count(spec.options.get('n_train')):>5}", style="dim")
    if not on_disk:
        text.append(f" {MARK_MISSING}", style="yellow")
    return text


class AvailableTasks(OptionList):
    """Every task on offer, under a header per domain; option ids are task names."""

    def show(self, groups: list[tuple[str, list[TaskSpec]]], seq: TaskSequence, available: dict[str, bool]) -> None:
        """(Re)build the list, keeping the highlighted task."""
        keep = self.highlighted_option.id if self.highlighted_option else None
        options: list[Option] = []
        for domain, specs in groups:
            options.append(Option(Text(domain, style="bold"), disabled=True))
            options.extend(Option(task_prompt(s, seq.where(s.name), available.get(s.name, True)), id=s.name) for s in specs)
        self.set_options(options)
        self.select_task(keep)

    def select_task(self, name: str | None) -> None:
        """Highlight task ``name`` (the first task when it is not listed)."""
        ids = [o.id for o in self.options]
        if name in ids:
            self.highlighted = ids.index(name)
        else:
            self.highlighted = next((i for i, o in enumerate(self.options) if not o.disabled), None)

    @property
    def current(self) -> str | None:
        """The highlighted task's name."""
        option = self.highlighted_option
        return option.id if option is not None and not option.disabled else None


class SequenceList(OptionList):
    """The sequence in training order, then the held-out tasks; option ids are ``train:NAME``/``heldout:NAME``."""

    def show(self, seq: TaskSequence, specs: dict[str, TaskSpec], focus_name: str | None = None) -> None:
        """(Re)build the list, highlighting ``focus_name`` (or keeping the current task)."""
        focus_name = focus_name or self.current
        options: list[Option] = []
        if not seq.tasks:
            options.append(Option(Text("(empty: add tasks from the list above)", style="italic"), disabled=True))
        for i, name in enumerate(seq.tasks, 1):
            options.append(Option(self._line(f"{i:>2}", name, specs), id=f"train:{name}"))
        if seq.heldout:
            options.append(Option(Text("held out · evaluated, never trained", style="bold"), disabled=True))
            options.extend(Option(self._line(f" {MARK_HELDOUT}", n, specs), id=f"heldout:{n}") for n in seq.heldout)
        self.set_options(options)
        ids = [(o.id or "").partition(":")[2] for o in self.options]
        if focus_name in ids:
            self.highlighted = ids.index(focus_name)
        else:
            self.highlighted = next((i for i, o in enumerate(self.options) if not o.disabled), None)

    @staticmethod
    def _line(mark: str, name: str, specs: dict[str, TaskSpec]) -> Text:
        spec = specs.get(name)
        text = Text(f"{mark} {name:<18}", no_wrap=True, overflow="ellipsis")
        if spec is not None:
            text.append(f" {spec.domain}", style="dim")
        return text

    @property
    def current(self) -> str | None:
        """The highlighted task's name."""
        option = self.highlighted_option
        if option is None or option.disabled or option.id is None:
            return None
        return option.id.partition(":")[2]


class TaskPicker(Vertical):
    """Both task lists and the :class:`TaskSequence` they edit (ids ``tasks-available``, ``tasks-sequence``).

    ``load`` reads the registry for a config (its data dir and ``[[task]]`` tables);
    ``registry_error`` holds the one-line reason when its user tasks are invalid.
    """

    class Changed(Message):
        """The sequence or the held-out set changed."""

    def __init__(self, tasks: Iterable[str] = (), heldout: Iterable[str] = (), *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.seq = TaskSequence(list(tasks), list(heldout))
        self.specs: dict[str, TaskSpec] = {}
        self.available: dict[str, bool] = {}
        self.groups: list[tuple[str, list[TaskSpec]]] = []
        self.registry_error: str | None = None
        self.last_list = "#tasks-available"

    def load(self, data_dir: str | None, user_tasks: Iterable[dict[str, object]] = ()) -> None:
        """Read the tasks on offer (a few stat calls for the MedMNIST files)."""
        from medtui.data.registry import TaskRegistry

        try:
            registry = TaskRegistry(data_dir, user_tasks)
            self.registry_error = None
        except MedtuiError as e:  # a bad [[task]] table: still offer the built-in tasks
            registry = TaskRegistry(data_dir)
            self.registry_error = str(e)
        specs = registry.specs()
        self.specs = {s.name: s for s in specs}
        self.available = {s.name: registry.available(s) for s in specs}
        self.groups = task_choices(specs, self.available)

    def compose(self) -> ComposeResult:
        """The tasks on offer above the sequence."""
        available = AvailableTasks(id="tasks-available")
        available.border_title = "Tasks"
        available.border_subtitle = f"{MARK_MISSING} = not on disk"
        yield available
        sequence = SequenceList(id="tasks-sequence")
        sequence.border_title = "Sequence"
        yield sequence

    def on_mount(self) -> None:
        """Fill both lists."""
        self.show()

    def set_sequence(self, tasks: Iterable[str], heldout: Iterable[str]) -> None:
        """Replace the sequence (after loading a file)."""
        self.seq = TaskSequence(list(tasks), list(heldout))
        self.show()

    def show(self, focus_name: str | None = None) -> None:
        """Re-render both lists from the state."""
        self.query_one(AvailableTasks).show(self.groups, self.seq, self.available)
        sequence = self.query_one(SequenceList)
        sequence.show(self.seq, self.specs, focus_name)
        sequence.border_subtitle = f"{len(self.seq.tasks)} trained · {len(self.seq.heldout)} held out"

    def on_descendant_focus(self) -> None:
        """Remember the list in use: the screen's task keys (and the command palette) act on it."""
        focused = self.screen.focused
        if isinstance(focused, (AvailableTasks, SequenceList)):
            self.last_list = f"#{focused.id}"

    def target(self) -> tuple[str, str | None]:
        """``("available" | "sequence", highlighted task)`` of the list in use."""
        widget = self.query_one(self.last_list)
        assert isinstance(widget, (AvailableTasks, SequenceList))
        return ("available" if isinstance(widget, AvailableTasks) else "sequence"), widget.current

    def _edited(self, focus_name: str | None = None) -> None:
        self.show(focus_name)
        self.post_message(self.Changed())

    @on(OptionList.OptionSelected, "#tasks-available")
    def _picked(self) -> None:
        self.add()

    def add(self, heldout: bool = False) -> None:
        """Append the task highlighted in the task list to the sequence (or the held-out set)."""
        which, name = self.target()
        if which != "available" or name is None:
            return
        refused = self.seq.add(name, heldout=heldout)
        if refused:
            self.notify(refused, severity="warning")
            return
        self._edited(name)

    def hold_out(self) -> None:
        """Task list: add the task as held out. Sequence: switch the task between trained and held out."""
        which, name = self.target()
        if name is None:
            return
        if which == "available" and self.seq.where(name) is None:
            self.add(heldout=True)
            return
        self.seq.toggle_heldout(name)
        self._edited(name)

    def remove(self) -> None:
        """Take the highlighted task out of the sequence or the held-out set."""
        _, name = self.target()
        if name is not None and self.seq.where(name):
            self.seq.remove(name)
            self._edited()

    def move(self, delta: int) -> None:
        """Move the task highlighted in the sequence up (-1) or down (+1)."""
        which, name = self.target()
        if which == "sequence" and name is not None:
            self.seq.move(name, delta)
            self._edited(name)
