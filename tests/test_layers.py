"""Layering rules: the CLI and the app open without torch; the engine never imports the store or the UI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "medtui"


@pytest.mark.parametrize("module", ["medtui.cli", "medtui.tui", "medtui.tui.app", "medtui.store.store", "medtui.jobs.queue", "medtui.data.registry"])
def test_importing_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'open_clip'))]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def imports_of(folder: str) -> set[str]:
    found = set()
    for f in (PKG / folder).rglob("*.py"):
        for line in f.read_text().splitlines():
            s = line.strip()
            if s.startswith(("from medtui.", "import medtui.")):
                found.add(s.split()[1])
    return found


@pytest.mark.parametrize("folder, forbidden", [
    ("engine", ("medtui.store", "medtui.tui", "medtui.cli", "medtui.jobs")),
    ("paradigms", ("medtui.engine", "medtui.store", "medtui.tui", "medtui.cli", "medtui.jobs")),
    ("models", ("medtui.engine", "medtui.store", "medtui.tui", "medtui.cli", "medtui.paradigms")),
    ("data", ("medtui.engine", "medtui.store", "medtui.tui", "medtui.cli", "medtui.models")),
    ("metrics", ("medtui.engine", "medtui.store", "medtui.tui", "medtui.cli", "medtui.models", "medtui.data")),
    ("store", ("medtui.engine", "medtui.tui", "medtui.cli", "medtui.jobs", "medtui.models")),
])
def test_imports_point_down(folder: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(m for m in imports_of(folder) if m.startswith(forbidden))
    assert not bad, f"{folder}/ imports {bad}"


def test_open_clip_is_only_imported_by_models() -> None:
    for f in PKG.rglob("*.py"):
        if "models" in f.parts:
            continue
        assert "import open_clip" not in f.read_text(), f
