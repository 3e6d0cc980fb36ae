"""What a run records about where it ran: host, git commit of the working directory, package versions."""

from __future__ import annotations

import platform
import socket
import subprocess
from importlib import metadata
from typing import Any


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape results."""
    out = {"python": platform.python_version()}
    for pkg in ("medtui", "torch", "torchvision", "open_clip_torch", "numpy", "medmnist"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        import torch

        if torch.version.cuda:
            out["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return out


def provenance() -> dict[str, Any]:
    """Columns for the run record: host, git commit and dirty flag of the cwd's repository, versions."""
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = int(bool(status)) if status is not None else None
    return {"host": socket.gethostname(), "git_commit": commit, "git_dirty": dirty, "versions": package_versions()}
