"""benchmarks/gpu_check.sh runs where there is no GPU: its CPU fallback with a tiny model, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_cpu_fallback_prints_every_figure() -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MEDTUI_THREADS": "1"}
    out = subprocess.run(
        ["bash", str(SCRIPT), "--device", "cpu", "--tasks", "2", "--n-train", "8", "--n-test", "6", "--steps", "1",
         "--batch-size", "4"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "model medtui-tiny-vit" in text and "CPU fallback" in text
    train = re.search(r"train \(data on device\)\s+([\d.]+) img/s", text)
    evals = re.search(r"eval .*?([\d.]+) img/s  \((\d+) images", text)
    run = re.search(r"run   2 tasks x 8 train images x 1 epochs: ([\d.]+) s end to end \(stages ([\d., ]+) s", text)
    assert train and float(train.group(1)) > 0
    assert evals and int(evals.group(2)) == 12  # 2 tasks x 6 test images, one pass each
    assert run and len(run.group(2).split(",")) == 2
    assert text.rstrip().splitlines()[-1].startswith("gpu_check done in")
