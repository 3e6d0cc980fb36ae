"""The screens' worker messages live in one module: no screen defines its own."""

from __future__ import annotations

import ast
from pathlib import Path

import medtui.tui

MESSAGES = {"TasksListed", "TaskLoaded", "TaskLoadFailed", "RunCreated", "ConfigLoaded", "ConfigSaved", "FormFailed"}


def test_worker_messages_are_defined_once_in_the_messages_module() -> None:
    root = Path(medtui.tui.__file__).parent
    defined: dict[str, list[str]] = {}
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name in MESSAGES:
                defined.setdefault(node.name, []).append(f.relative_to(root).as_posix())
    assert defined == {name: ["messages.py"] for name in MESSAGES}


def test_screens_use_the_shared_classes() -> None:
    from medtui.tui import messages
    from medtui.tui.screens import datasets, new

    assert datasets.TasksListed is messages.TasksListed and datasets.TaskLoaded is messages.TaskLoaded
    assert new.RunCreated is messages.RunCreated and new.FormFailed is messages.FormFailed
