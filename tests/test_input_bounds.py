"""Bad values are refused before anything is stored: non-finite floats, absurd counts, all-digit run names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app
from medtui.config import from_mapping, resolve
from medtui.errors import ConfigError

runner = CliRunner()
FAST = ["--tasks", "synth-cxr-a", "--epochs", "1", "--max-train", "32", "--max-test", "16", "--device", "cpu"]

#: (flags, words the one-line error must contain)
BAD_FLAGS: list[tuple[list[str], str]] = [
    (["--lr", "inf"], "finite"),
    (["--lr", "-inf"], "finite"),
    (["--lr", "nan"], "finite"),
    (["--lr", "1e9"], "at most 10"),
    (["--epochs", "10000000000"], "epochs must be at most 10,000"),
    (["--batch-size", "100000000"], "batch size must be at most"),
    (["--buffer-size", "100000000000"], "buffer size must be at most"),
    (["--max-train", "1000000000000"], "max train must be at most"),
    (["--max-test", "1000000000000"], "max test must be at most"),
    (["--seed", "-1"], "seed must be in"),
    (["--seed", "99999999999999999999"], "seed must be in"),
    (["--name", "3"], "all digits"),
    (["--name", "007"], "all digits"),
    (["--amp", "fp16"], "amp fp16 needs a CUDA device"),
    (["--text-lr-scale", "0"], "text lr scale must be in (0, 100]"),
    (["--text-lr-scale", "nan"], "text lr scale must be a finite number"),
    (["--tune", "vision", "--text-lr-scale", "0.5"], "has no effect with tune 'vision'"),
    (["--amp", "fp32"], "unknown amp mode 'fp32'"),
]
BAD_TOML: list[tuple[str, str]] = [
    ("weight_decay = inf", "weight decay must be a finite number"),
    ("weight_decay = nan", "weight decay must be a finite number"),
    ("warmup = nan", "finite"),
    ("lr = -inf", "finite"),
    ("eval_batch_size = 1000000000", "eval batch size must be at most"),
    ("keep_checkpoints = 1000000", "keep checkpoints must be at most"),
    ('name = "12"', "all digits"),
]


def runs_in(db: Path) -> int:
    if not db.exists():
        return 0
    conn = sqlite3.connect(db)
    try:
        return conn.execute("select count(*) from runs").fetchone()[0]
    finally:
        conn.close()


def one_line(result: object, words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr


@pytest.mark.parametrize("mode", ["--headless", "--detach", "--queue"])
@pytest.mark.parametrize("flags,words", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_bad_flags_are_one_line_errors_and_store_nothing(tmp_path: Path, flags: list[str], words: str, mode: str) -> None:
    db = tmp_path / "s.db"
    one_line(runner.invoke(app, ["run", mode, *FAST, *flags, "--db", str(db)]), words)
    assert runs_in(db) == 0


@pytest.mark.parametrize("line,words", BAD_TOML, ids=[t for t, _ in BAD_TOML])
def test_bad_toml_values_are_one_line_errors(tmp_path: Path, line: str, words: str) -> None:
    cfg = tmp_path / "exp.toml"
    cfg.write_text(line + "\n")
    db = tmp_path / "s.db"
    one_line(runner.invoke(app, ["run", "--headless", "--config", str(cfg), *FAST, "--db", str(db)]), words)
    assert runs_in(db) == 0


def test_bounds_hold_in_the_python_api_too() -> None:
    with pytest.raises(ConfigError, match="finite"):
        resolve(from_mapping({"lr": float("inf")}))
    with pytest.raises(ConfigError, match="all digits"):
        resolve(from_mapping({"name": "42"}))
    assert resolve(from_mapping({"name": "run 42", "epochs": 10_000, "lr": 10.0})).name == "run 42"


def test_max_parallel_has_an_upper_bound(tmp_path: Path) -> None:
    one_line(runner.invoke(app, ["queue", "--max-parallel", "100000", "--db", str(tmp_path / "s.db")]), "--max-parallel must be in 1..256")
