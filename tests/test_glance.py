"""Results at a glance: short labels, heat colours, 80-column output, one table style, the models filter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medtui.cli import app
from medtui.config import DEFAULT_TASKS, RunConfig, resolve
from medtui.heat import colour_enabled, heat_rgb, heat_style, label_width, matrix_labels, readable_on, short_names
from medtui.store.store import Store

runner = CliRunner()
MEDMNIST5 = ("pathmnist", "dermamnist", "octmnist", "pneumoniamnist_64", "bloodmnist")
ESC = "\x1b["


def seed_run(db: Path, tasks: tuple[str, ...], heldout: tuple[str, ...] = (), name: str = "five") -> int:
    """A finished continual run with a full matrix whose values are known (row i, column j: 0.1 + 0.1 * ((i + j) % 9))."""
    cfg = resolve(RunConfig(tasks=tasks, heldout=heldout, name=name, device="cpu"))
    with Store(db) as s:
        rid = s.create_run(cfg, status="finished")
        for i, row in enumerate(["zero-shot", *[f"after {t}" for t in tasks]]):
            for j, task in enumerate(tasks + heldout):
                s.record_evaluation(rid, {"row": i, "row_label": row, "task": task, "accuracy": 0.1 + 0.1 * ((i + j) % 9),
                                          "auc": None, "per_class": [], "n": 10})
    return rid


def cli(*args: str, colour: bool = False, columns: int = 80) -> str:
    env = {"COLUMNS": str(columns), "LINES": "50"}
    env.update({"NO_COLOR": "", "FORCE_COLOR": "1", "COLORTERM": "truecolor"} if colour else {"NO_COLOR": "1", "FORCE_COLOR": ""})
    r = runner.invoke(app, list(args), env=env)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_short_names_and_row_labels() -> None:
    assert short_names(["synth-cxr-a", "synth-cxr-b", "synth-derm"]) == {"synth-cxr-a": "cxr-a", "synth-cxr-b": "cxr-b", "synth-derm": "derm"}
    assert short_names(list(MEDMNIST5), 8) == {"pathmnist": "path", "dermamnist": "derma", "octmnist": "oct",
                                              "pneumoniamnist_64": "pneumon…", "bloodmnist": "blood"}
    # cutting would make two names equal: numbered instead
    assert short_names(["pneumonia-chest-a", "pneumonia-chest-b", "x"], 6) == {"pneumonia-chest-a": "t1", "pneumonia-chest-b": "t2", "x": "x"}
    assert short_names(["synth-cxr-a"]) == {"synth-cxr-a": "synth-cxr-a"}
    labels = matrix_labels({"rows": ["zero-shot", "after synth-cxr-a", "after synth-derm"], "columns": ["synth-cxr-a", "synth-derm", "synth-blood"],
                            "heldout": ["synth-blood"]})
    assert labels.rows == ["zs", "1 cxr-a", "2 derm"] and labels.columns == ["cxr-a", "derm", "blood"]
    assert labels.heldout == [False, False, True]
    assert labels.legend_text() == "zs = zero-shot · cxr-a = synth-cxr-a · derm = synth-derm · blood = synth-blood · * held-out"
    specialized = matrix_labels({"rows": ["zero-shot", "model a-x", "model a-y"], "columns": ["a-x", "a-y"], "heldout": []})
    assert specialized.rows == ["zs", "1 x", "2 y"]
    assert matrix_labels({"rows": ["zero-shot", "joint"], "columns": ["a-x", "a-y"], "heldout": []}).rows == ["zs", "joint"]
    assert short_names(["pneumoniamnist_64", "pathmnist"]) == {"pneumoniamnist_64": "pneumonia64", "pathmnist": "path"}
    assert label_width(5) == 11 and label_width(7) == 8 and label_width(30) == 5


def test_heat_colours_and_readable_text() -> None:
    assert heat_rgb(0.0) == (215, 48, 39) and heat_rgb(0.5) == (254, 224, 139) and heat_rgb(1.0) == (26, 152, 80)
    assert heat_rgb(-1) == heat_rgb(0.0) and heat_rgb(2) == heat_rgb(1.0)
    assert heat_rgb(0.25) == (234, 136, 89)  # halfway between red and yellow
    assert readable_on((254, 224, 139)) == "black" and readable_on((40, 20, 20)) == "white"
    assert heat_style(0.5) == "black on #fee08b"
    assert colour_enabled({}) and not colour_enabled({"NO_COLOR": "1"}) and colour_enabled({"NO_COLOR": ""})


@pytest.mark.parametrize("tasks, heldout", [(DEFAULT_TASKS, ()), (MEDMNIST5, ("retinamnist", "breastmnist"))])
def test_a_five_task_matrix_fits_80_columns_in_show_and_compare(db: Path, tasks: tuple[str, ...], heldout: tuple[str, ...]) -> None:
    a, b = seed_run(db, tasks, heldout, "first"), seed_run(db, tasks, heldout, "second")
    for out in (cli("show", str(a), "--db", str(db)), cli("compare", str(a), str(b), "--db", str(db))):
        lines = out.splitlines()
        assert max(map(len, lines)) <= 80, max(lines, key=len)
        # each matrix row is one line: its label, then every cell of the row
        zs = [ln for ln in lines if ln.startswith("zs ") and "=" not in ln]
        assert zs and all(len(re.findall(r"\d+\.\d", ln)) == len(tasks) + len(heldout) for ln in zs)
        assert f"zs = zero-shot" in out and f"{short_names(list(tasks + heldout), 8).get(tasks[0])} = {tasks[0]}" in out
        assert ESC not in out


def test_colour_mode_colours_the_cells_and_no_color_gives_plain_text(db: Path) -> None:
    rid = seed_run(db, DEFAULT_TASKS)
    coloured = cli("show", str(rid), "--db", str(db), colour=True)
    # 24-bit backgrounds of the heat scale: the zero-shot cell of the first column is 10% (a red-orange)
    r, g, b = heat_rgb(0.1)
    assert f"48;2;{r};{g};{b}m" in coloured
    plain = cli("show", str(rid), "--db", str(db))
    assert ESC not in plain and "10.0" in plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).splitlines()[2:] == plain.splitlines()[2:]


def test_listing_headers_are_never_cut_at_80_columns(db: Path) -> None:
    for i in range(3):
        seed_run(db, DEFAULT_TASKS, name=f"a-rather-long-run-name-{i}-with-more-words")
    runs = cli("runs", "--db", str(db)).splitlines()
    assert max(map(len, runs)) <= 80
    assert runs[0].split() == ["id", "name", "status", "paradigm", "buf", "last", "bwt", "forget", "took"]
    assert set(runs[1]) == {"─"}  # the house style: a rule under the header
    models = cli("models").splitlines()
    assert models[0].split() == ["model", "weights", "(✓", "cached)"] and max(map(len, models)) <= 80
    compare = [ln.rstrip() for ln in cli("compare", "1", "2", "--db", str(db)).splitlines()]
    assert max(map(len, compare)) <= 80
    # names too long for 80 columns: the columns are headed by id, the names said in full above
    assert " ".join(" ".join(compare[:2]).split()) == "runs: #1 a-rather-long-run-name-0-with-more-words · #2 a-rather-long-run-name-1-with-more-words"
    metrics = compare.index("Metrics (%)")
    assert compare[metrics + 1].split() == ["metric", "#1", "#2"]
    short = [ln.rstrip() for ln in cli("compare", "1", "2", "--db", str(db), columns=200).splitlines()]
    assert "#2 a-rather-long-run-name-1-with-more-words" in short[short.index("Metrics (%)") + 1]


def test_models_filter_and_medical_first() -> None:
    everything = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert "BiomedCLIP" in everything[0]["name"] and everything[0]["medical"]
    vit = json.loads(runner.invoke(app, ["models", "vit", "--json"]).stdout)
    assert vit and all("vit" in m["name"].lower() for m in vit)
    assert {"medtui-tiny-vit", "ViT-B-16"} <= {m["name"] for m in vit} and "medtui-tiny" not in {m["name"] for m in vit}
    cached = json.loads(runner.invoke(app, ["models", "--cached", "--json"]).stdout)
    assert cached and all(m["tiny"] or any(p["cached"] for p in m["pretrained"]) for m in cached)
    none = runner.invoke(app, ["models", "no-such-model-xyz"], env={"NO_COLOR": "1"})
    assert none.exit_code == 0 and "no model matches 'no-such-model-xyz'" in none.stdout


def test_headless_run_says_what_it_will_do_and_where_the_result_is(db: Path) -> None:
    args = ["--tasks", "synth-cxr-a,synth-derm", "--epochs", "1", "--max-train", "64", "--max-test", "32", "--device", "cpu"]
    r = runner.invoke(app, ["run", "--headless", "--db", str(db), *args, "--buffer-size", "10"], env={"NO_COLOR": "1", "COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    rid = int(r.stdout)  # stdout: the data (the run id) and nothing else
    err = r.stderr
    # the plan first: tasks, stages, device; then images per stage once the tasks are loaded
    assert err.startswith(f"run {rid}: continual with a 10-sample buffer, 2 stages of 1 epoch (batch 64)\n"), err
    assert "tasks synth-cxr-a → synth-derm" in err and "device cpu" in err
    assert "stage 1 (after synth-cxr-a): 64 images × 1 epoch · 1 step" in err
    assert "stage 2 (after synth-derm): 64 images × 1 epoch + 10 replayed · 1 step" in err
    assert "each of 3 evaluations: 64 test images" in err
    assert re.search(r"step 1/1 .* · ETA (\d+\.\ds|\d+s|\d+m\d\ds)", err)
    assert "stage 2 finished in" in err and "ETA 0.0s" in err
    lines = err.rstrip().splitlines()
    assert re.fullmatch(rf"run {rid} finished in (\d+\.\ds|\d+s|\d+m\d\ds) · stored in {re.escape(str(db.resolve()))}", lines[-2])
    assert lines[-1] == f"next: `medtui show {rid}` for the details, `medtui` for the app (charts, compare)"
    assert "zs = zero-shot" in err and ESC not in err


def test_trained_share_never_reads_as_a_rounded_100_or_scientific() -> None:
    from medtui.format import fmt_share, fmt_trained

    assert fmt_trained({"n_trainable": 8_498_672, "n_params": 8_498_673}) == "8,498,672 of 8,498,673 parameters trained (>99.9%)"
    assert fmt_trained({"n_trainable": 73_068, "n_params": 8_571_741}).endswith("(0.85%)")
    assert [fmt_share(x) for x in (1.0, 0.0, 0.5, 0.123, 0.997, 0.0000001)] == ["100%", "0%", "50%", "12%", "99.7%", "<0.01%"]
