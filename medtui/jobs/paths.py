"""Where a store keeps its runs' files: logs and checkpoints live beside the database."""

from __future__ import annotations

from pathlib import Path


def _stem(db_path: Path) -> Path:
    db_path = Path(db_path).resolve()
    return db_path.parent / f"{db_path.stem}-files"


def log_path(db_path: Path, run_id: int) -> Path:
    """The log file of run ``run_id`` of the store at ``db_path``."""
    return _stem(db_path) / "logs" / f"run-{run_id}.log"


def checkpoint_dir(db_path: Path, run_id: int) -> Path:
    """The folder of run ``run_id``'s stage checkpoints."""
    return _stem(db_path) / "checkpoints" / f"run-{run_id}"
