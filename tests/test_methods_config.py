"""Methods in the config and on the command line: registry, option validation, TOML, `medtui methods`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app
from medtui.config import RunConfig, from_mapping, load_toml, resolve, to_toml
from medtui.errors import ConfigError
from medtui.methods import describe, method_names, option_fields, resolve_options

runner = CliRunner()


def test_registry_lists_every_method_naive_first() -> None:
    names = method_names()
    assert names[0] == "naive"
    assert {"naive", "lwf"} <= set(names)
    for item in describe():
        assert item["description"] and item["paper"], item


def test_options_are_resolved_with_defaults_and_validated() -> None:
    defaults = {o["name"]: o["default"] for o in option_fields("lwf")}
    assert resolve_options("lwf", {}) == defaults
    assert resolve_options("lwf", {"temperature": 3})["temperature"] == 3.0  # an int is a float
    with pytest.raises(ConfigError, match="has no option 'temp'.*did you mean temperature"):
        resolve_options("lwf", {"temp": 1.0})
    with pytest.raises(ConfigError, match="option 'weight' must be a float, got 'high'"):
        resolve_options("lwf", {"weight": "high"})
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        resolve_options("lwf", {"temperature": 0})
    with pytest.raises(ConfigError, match="unknown method 'lfw'.*did you mean lwf"):
        resolve_options("lfw", {})


def test_resolved_config_stores_the_options_and_refuses_methods_outside_continual() -> None:
    cfg = resolve(RunConfig(method="lwf", method_opts={"weight": 2}))
    assert cfg.method_opts == {**resolve_options("lwf", {}), "weight": 2.0}
    assert cfg.to_dict()["method_opts"] == cfg.method_opts
    assert "+lwf" in (cfg.name or "")
    with pytest.raises(ConfigError, match="method 'lwf' applies to continual runs only, not joint"):
        resolve(RunConfig(method="lwf", paradigm="joint"))
    with pytest.raises(ConfigError, match="unknown joint sampling"):
        resolve(RunConfig(joint_sampling="random"))


def test_toml_method_table_and_string_round_trip(tmp_path: Path) -> None:
    p = tmp_path / "exp.toml"
    p.write_text('tasks = ["synth-cxr-a"]\n[method]\nname = "lwf"\ntemperature = 4.0\n')
    cfg = load_toml(p)
    assert cfg.method == "lwf" and cfg.method_opts == {"temperature": 4.0}
    resolved = resolve(cfg)
    p.write_text(to_toml(resolved))
    assert resolve(load_toml(p)) == resolved
    p.write_text('method = "lwf"\n')
    assert load_toml(p).method == "lwf" and load_toml(p).method_opts == {}
    p.write_text('[method]\ntemperature = 4.0\n')
    with pytest.raises(ConfigError, match="needs a name"):
        load_toml(p)
    # a stored config (JSON) reads back as it was
    assert from_mapping(json.loads(json.dumps(resolved.to_dict()))) == resolved
    # another method does not inherit the options of the base's method
    assert from_mapping({"method": "naive"}, base=resolved).method_opts == {}


def test_cli_method_and_opts(db: Path) -> None:
    fast = ["--tasks", "synth-cxr-a", "--epochs", "1", "--max-train", "32", "--max-test", "16", "--device", "cpu", "--db", str(db)]
    for args, needle in [
        (["--method", "lwff"], "unknown method 'lwff'"),
        (["--method", "lwf", "--opt", "nope=1"], "method 'lwf' has no option 'nope'"),
        (["--method", "lwf", "--opt", "weight=abc"], "option 'weight' must be a float, got 'abc'"),
        (["--method", "lwf", "--opt", "weight"], "expected KEY=VALUE"),
        (["--method", "lwf", "--paradigm", "specialized"], "applies to continual runs only"),
    ]:
        r = runner.invoke(app, ["run", "--headless", *fast, *args])
        assert r.exit_code == 2, (args, r.output)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0], (args, r.stderr)
    assert not db.exists() or json.loads(runner.invoke(app, ["runs", "--json", "--db", str(db)]).stdout) == []


def test_methods_command_lists_options_and_papers() -> None:
    r = runner.invoke(app, ["methods", "--json"])
    assert r.exit_code == 0
    items = {m["name"]: m for m in json.loads(r.stdout)}
    assert set(items) == set(method_names())
    assert {o["name"] for o in items["lwf"]["options"]} == {"temperature", "weight"}
    text = runner.invoke(app, ["methods"]).stdout
    assert "lwf" in text and "Li & Hoiem" in text and "--opt temperature=2.0" in text


def test_compare_diff_names_each_method_option(tmp_path: Path) -> None:
    from medtui.store.compare import compare
    from medtui.store.store import Store

    with Store(tmp_path / "c.db") as s:
        a = s.create_run(resolve(RunConfig(method="lwf")))
        b = s.create_run(resolve(RunConfig(method="lwf", method_opts={"weight": 3.0})))
        c = compare(s, [a, b])
    assert c.config_diff["method.weight"] == [10.0, 3.0]
    assert c.config_same["method"] == "lwf"
