"""Shared fixtures: a temporary store, fast configs, the shared MedMNIST folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


SHARED_MEDMNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medmnist"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own working directory and no inherited store/data/queue settings."""
    monkeypatch.chdir(tmp_path)
    for var in ("MEDTUI_DB", "MEDTUI_DATA_DIR", "MEDTUI_MAX_PARALLEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a fresh store file."""
    return tmp_path / "store.db"


@pytest.fixture
def shared_medmnist() -> Path:
    """The folder of the real MedMNIST files (skips where it is absent)."""
    if not (SHARED_MEDMNIST / "pneumoniamnist.npz").is_file():
        pytest.skip(f"real MedMNIST files not found in {SHARED_MEDMNIST}")
    return SHARED_MEDMNIST


os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture
def anyio_backend() -> str:
    """Textual runs on asyncio (for tests marked ``anyio``)."""
    return "asyncio"


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A store with three finished demo runs (1, 2: continual; 3: joint)."""
    from medtui.store.demo import seed_demo_runs

    db = tmp_path / "s.db"
    assert seed_demo_runs(db, 3, now=1_790_000_000) == [1, 2, 3]
    return db
