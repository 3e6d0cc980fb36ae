"""LoRA (``tune = "lora"``): adapters start at zero, only they train, hand-counted sizes, small checkpoints, resume."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from medtui.cli import app
from medtui.config import RunConfig, load_toml, resolve, to_toml
from medtui.data.registry import TaskRegistry
from medtui.engine.run import ResumePoint, export_clip_weights, run_experiment
from medtui.engine.tensors import to_task_tensors
from medtui.errors import ModelError, RunCancelled
from medtui.events import ListSink, RunStarted, StageFinished, TaskEvaluated
from medtui.models import lora
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip
from helpers import fast_config

TASKS = ("synth-cxr-a", "synth-derm")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny ResNet CLIP trained briefly (joint, full) and saved as an open_clip checkpoint file.

    From random weights the zero-shot row is all chance and the ResNet's zero-initialised
    residual norms block every bottleneck adapter's gradient; a trained start has neither.
    """
    d = tmp_path_factory.mktemp("pretrained")
    run_experiment(fast_config(tasks=TASKS, paradigm="joint", epochs=2), ListSink(), checkpoint_dir=d)
    return str(export_clip_weights(d / "stage-1.pt", d / "tiny-trained.pt"))


def lora_config(pretrained: str, **overrides: object) -> RunConfig:
    base = dict(tasks=TASKS, pretrained=pretrained, tune="lora", lr=1e-3, max_train=96, max_test=48)
    return fast_config(**{**base, **overrides})


def classifier(model: str, tune: str, pretrained: str | None = None, seed: int = 0, **kw: object) -> ClipClassifier:
    torch.manual_seed(seed)
    specs = [TaskRegistry().get(t) for t in TASKS]
    return ClipClassifier(load_clip(model, pretrained), specs, tune, **kw)


# -- config ---------------------------------------------------------------------------------
def test_lora_keys_round_trip_through_toml_and_choose_the_lora_learning_rate(tmp_path: Path) -> None:
    p = tmp_path / "exp.toml"
    p.write_text('tune = "lora"\nlora_rank = 4\nlora_alpha = 8\nlora_targets = ["c_fc", "mlp.c_proj"]\n')
    cfg = load_toml(p)
    assert (cfg.lora_rank, cfg.lora_alpha, cfg.lora_targets) == (4, 8.0, ("c_fc", "mlp.c_proj"))
    p.write_text(to_toml(cfg))
    assert load_toml(p) == cfg
    assert resolve(replace(cfg, pretrained="openai", model="ViT-B-16")).lr == 1e-4  # adapters from zero: larger step
    assert resolve(replace(cfg, pretrained="openai", model="ViT-B-16", tune="full", lora_rank=8, lora_alpha=16.0, lora_targets=())).lr == 1e-5
    assert resolve(cfg).lr == 1e-3  # random weights


# -- the adapted model ----------------------------------------------------------------------
def _hand_count(model: ClipClassifier, rank: int) -> int:
    """r·(in + out) per adapted linear weight, r·(in·k² + out) per convolution, from the frozen layers' shapes."""
    total = 0
    for t in model.lora_layers:
        w = lora.frozen_weight(model.clip, t)
        if w.dim() == 4:
            out, cin, kh, kw = w.shape
            total += rank * (cin * kh * kw + out)
        else:
            out, cin = w.shape
            total += rank * (cin + out)
    return total


def test_trainable_parameters_are_r_times_in_plus_out_per_target() -> None:
    vit = classifier("medtui-tiny-vit", "lora")
    assert vit.lora_targets == ("in_proj", "out_proj", "c_fc", "c_proj")
    # per block (width 64, MLP 256): in_proj 8·(64+192) + out_proj 8·(64+64) + c_fc 8·(64+256) + c_proj 8·(256+64)
    # = 8192; two image and two text blocks
    assert sum(p.numel() for p in vit.trainable_parameters()) == 4 * 8192 == _hand_count(vit, 8)
    one = classifier("medtui-tiny-vit", "lora", lora_rank=4, lora_targets=("c_fc",))
    assert sum(p.numel() for p in one.trainable_parameters()) == 4 * 4 * (64 + 256)
    rn = classifier("medtui-tiny", "lora")
    assert set(rn.lora_targets) == {"in_proj", "out_proj", "c_fc", "c_proj", "conv1", "conv2", "conv3", "q_proj", "k_proj", "v_proj"}
    n = sum(p.numel() for p in rn.trainable_parameters())
    assert n == _hand_count(rn, 8) and n < 0.02 * sum(p.numel() for p in rn.parameters())
    assert all(lora.is_adapter_key(k) for k, p in rn.named_parameters() if p.requires_grad)


def test_unknown_target_is_a_one_line_model_error() -> None:
    with pytest.raises(ModelError, match="lora target 'mlp.q_proj' matches no") as e:
        classifier("medtui-tiny", "lora", lora_targets=("mlp.q_proj",))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("model", ["medtui-tiny", "medtui-tiny-vit"])
def test_adapted_model_equals_the_base_model_before_training(model: str) -> None:
    full, adapted = classifier(model, "full"), classifier(model, "lora")
    assert all(not p.any() for k, p in adapted.named_parameters() if ".lora_B." in k)
    full.eval(), adapted.eval()
    x = adapted.prepare(torch.randint(0, 256, (16, 1, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        fa, fb = full.encode_images(x), adapted.encode_images(x)
        for task in TASKS:
            # the attention's effective weight W + 0 is a fresh tensor: equal values, last-bit rounding may differ
            ta, tb = full.class_embeddings(task), adapted.class_embeddings(task)
            torch.testing.assert_close(tb, ta, rtol=0, atol=1e-5)
            assert torch.equal(full.logits(fa, task).argmax(1), adapted.logits(fb, task).argmax(1))
    torch.testing.assert_close(fb, fa, rtol=0, atol=1e-5)


def _train_steps(model: ClipClassifier, steps: int = 4) -> None:
    data = TaskRegistry().load(TASKS[0], max_train=64, max_test=8, seed=0)
    tensors = to_task_tensors(data, torch.device("cpu"))
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2, weight_decay=0.01)
    model.train()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x, y = tensors.train.gather(rng.choice(len(tensors.train), 32, replace=False), torch.device("cpu"))
        loss = F.cross_entropy(model.logits(model.encode_images(model.prepare(x)), TASKS[0]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("model", ["medtui-tiny", "medtui-tiny-vit"])
def test_training_changes_every_adapter_and_nothing_else(model: str, pretrained: str) -> None:
    m = classifier(model, "lora", pretrained=pretrained if model == "medtui-tiny" else None)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    _train_steps(m)
    after = m.state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    adapters = {k for k in before if lora.is_adapter_key(k)}
    assert changed == adapters  # every adapter moved; weights, biases, norm statistics bitwise as loaded
    # the same steps in full mode do move the pre-trained weights (so the check above can fail)
    f = classifier(model, "full", pretrained=pretrained if model == "medtui-tiny" else None)
    base = {k: v.clone() for k, v in f.state_dict().items()}
    _train_steps(f)
    assert any(not torch.equal(base[k], v) for k, v in f.state_dict().items())


def test_a_deep_copy_uses_its_own_adapters() -> None:
    m = classifier("medtui-tiny", "lora")
    twin = copy.deepcopy(m).eval()
    m.eval()
    with torch.no_grad():
        for k, p in twin.clip.named_parameters():
            if ".lora_B." in k:
                p.normal_()
    x = m.prepare(torch.randint(0, 256, (4, 1, 32, 32), dtype=torch.uint8))
    with torch.no_grad():
        ref = m.encode_images(x)
        assert not torch.equal(twin.encode_images(x), ref)
        assert torch.equal(m.encode_images(x), ref)  # the original did not pick up the copy's adapters


# -- runs -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_checkpoints_hold_only_adapters_and_resume_gives_the_same_matrix(pretrained: str, tmp_path: Path) -> None:
    cfg = lora_config(pretrained, keep_checkpoints=2)
    whole = ListSink()
    run_experiment(cfg, whole, checkpoint_dir=tmp_path / "whole")
    started = whole.of(RunStarted)[0]

    ckpt = torch.load(tmp_path / "whole" / "stage-1.pt", map_location="cpu", weights_only=True)
    assert ckpt["model"] and all(lora.is_adapter_key(k) for k in ckpt["model"])
    assert sum(v.numel() for v in ckpt["model"].values()) == started.n_trainable

    full = ListSink()
    full_cfg = replace(cfg, tune="full", lr=cfg.lr)
    run_experiment(full_cfg, full, checkpoint_dir=tmp_path / "full")
    lora_bytes = (tmp_path / "whole" / "stage-1.pt").stat().st_size
    full_bytes = (tmp_path / "full" / "stage-1.pt").stat().st_size
    assert lora_bytes < 0.05 * full_bytes, (lora_bytes, full_bytes)
    # adapters start at zero: the zero-shot row is the full model's, and it is not chance
    assert whole.matrix()[0] == full.matrix()[0] and whole.matrix()[0] != [0.5, 0.5]
    assert whole.matrix()[1] != whole.matrix()[0]  # the adapters learned something

    # cancelled after stage 1, resumed from its checkpoint in a fresh model
    first = ListSink()
    with pytest.raises(RunCancelled):
        run_experiment(cfg, first, checkpoint_dir=tmp_path / "cut", should_stop=lambda: bool(first.of(StageFinished)[1:]))
    rest = ListSink()
    run_experiment(cfg, rest, checkpoint_dir=tmp_path / "cut", resume=ResumePoint(1, tmp_path / "cut" / "stage-1.pt"))
    resumed = first.matrix()
    for e in rest.of(TaskEvaluated):
        resumed[e.row][started.columns.index(e.task)] = e.accuracy
    assert {e.row for e in rest.of(TaskEvaluated)} == {2}
    assert resumed == whole.matrix()


@pytest.mark.slow
def test_specialized_stages_restart_from_the_initial_adapters(pretrained: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import medtui.engine.run as engine_run

    entries: list[dict[str, torch.Tensor]] = []
    real = engine_run.train_stage

    def recording(model: ClipClassifier, *args: object, **kwargs: object) -> None:
        entries.append({k: v.clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(engine_run, "train_stage", recording)
    run_experiment(lora_config(pretrained, paradigm="specialized"), ListSink())
    assert len(entries) == 2
    assert all(torch.equal(entries[0][k], entries[1][k]) for k in entries[0])  # adapters and base both restarted
    entries.clear()
    run_experiment(lora_config(pretrained, paradigm="continual"), ListSink())
    changed = [k for k in entries[0] if not torch.equal(entries[0][k], entries[1][k])]
    assert changed and all(lora.is_adapter_key(k) for k in changed)  # continual carries the adapters on


# -- the command line -----------------------------------------------------------------------
runner = CliRunner()
FAST = ["--tasks", "synth-cxr-a", "--epochs", "1", "--max-train", "64", "--max-test", "32", "--device", "cpu"]


def test_headless_lora_run_stores_and_shows_the_trained_parameter_count(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    r = runner.invoke(app, ["run", "--headless", "--db", db, "--model", "medtui-tiny-vit", "--tune", "lora", "--lora-rank", "4", *FAST])
    assert r.exit_code == 0, r.output
    shown = runner.invoke(app, ["show", "1", "--db", db])
    assert shown.exit_code == 0, shown.output
    assert "lora rank 4 · alpha 16.0 · targets defaults for the architecture" in shown.stdout
    assert "16,384 of " in shown.stdout and "parameters trained" in shown.stdout
    detail = json.loads(runner.invoke(app, ["show", "1", "--db", db, "--json"]).stdout)
    assert detail["status"] == "finished" and None not in detail["matrix"][1]
    assert detail["progress"]["n_trainable"] == 16384  # half the rank-8 count hand-computed above
    assert detail["config"]["lora_rank"] == 4 and detail["config"]["tune"] == "lora"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tune", "lora", "--lora-rank", "0"], "lora rank must be in 1..4096"),
        (["--tune", "lora", "--lora-alpha", "nan"], "lora alpha must be a finite number > 0"),
        (["--tune", "lora", "--lora-targets", "nosuch"], "lora target 'nosuch' names no layer of medtui-tiny"),
        (["--tune", "lora", "--model", "medtui-tiny-vit", "--lora-targets", "c_fc,q_proj"], "lora target 'q_proj' names no layer"),
        (["--tune", "lora", "--lora-targets", "mlp c_fc"], "is not a module name"),
        (["--lora-rank", "4"], "lora rank applies only with tune = 'lora'"),
    ],
)
def test_bad_lora_flags_are_one_line_errors_and_store_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "x.db"
    r = runner.invoke(app, ["run", "--headless", "--db", str(db), *FAST, *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not db.exists()


@pytest.mark.slow
def test_killed_lora_run_resumes_to_the_same_matrix(pretrained: str, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from medtui.jobs.queue import reconcile
    from medtui.store.store import Store

    db = tmp_path / "k.db"
    cli = [sys.executable, "-m", "medtui"]
    args = ["--tasks", "synth-cxr-a,synth-derm,synth-histo", "--epochs", "2", "--max-train", "96", "--max-test", "48",
            "--device", "cpu", "--tune", "lora", "--lr", "1e-3", "--pretrained", pretrained]
    proc = subprocess.Popen([*cli, "run", "--headless", "--db", str(db), *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rid = int(proc.stdout.readline())
    deadline = time.time() + 240
    while time.time() < deadline:
        with Store(db) as s:
            if s.get_run(rid)["last_stage"] >= 1:
                break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert reconcile(db) == [rid]
    with Store(db) as s:
        assert s.detail(rid)["matrix"][2][0] is None  # killed during stage 2
    r = subprocess.run([*cli, "resume", str(rid), "--db", str(db)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ref = subprocess.run([*cli, "run", "--headless", "--json", "--db", str(db), *args], capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr
    with Store(db) as s:
        resumed = s.detail(rid)
    expected = json.loads(ref.stdout)["matrix"]
    assert resumed["status"] == "finished" and resumed["matrix"] == expected
    assert len({tuple(row) for row in expected}) > 1  # not a matrix of identical rows


@pytest.mark.parametrize("model", ["medtui-tiny", "medtui-tiny-vit"])
def test_the_torch_free_target_check_knows_the_real_layer_names(model: str) -> None:
    from medtui.models.catalog import lora_layer_names

    static = lora_layer_names(model)
    assert static is not None
    real = [t.name for t in lora.adaptable(load_clip(model, None).model)]
    # every layer the check lets through exists, and every real layer can be named
    assert all(any(lora.matches(n, r) for r in real) for n in static)
    assert all(any(lora.matches(n, r) for n in static) for r in real)


@pytest.mark.anyio
async def test_run_detail_config_tab_shows_the_trained_parameter_count(tmp_path: Path) -> None:
    from textual.widgets import DataTable

    from helpers import new_app, until
    from medtui.store.sink import StoreSink
    from medtui.store.store import Store
    from medtui.tui.screens.detail import RunDetailScreen

    db = tmp_path / "d.db"
    with Store(db) as s:
        lora_id = s.create_run(fast_config(tune="lora", lora_rank=4), status="running")
        full_id = s.create_run(fast_config(), status="running")
        for rid, n in ((lora_id, 16384), (full_id, 3386112)):
            StoreSink(s, rid)(RunStarted(
                rows=["zero-shot", "after a"], columns=["synth-cxr-a"], heldout=[], device="cpu", weights="random",
                fingerprints={}, n_params=3418881 if rid == lora_id else 3386113, n_trainable=n, start_row=0,
            ))
    app = new_app(db)
    async with app.run_test(size=(80, 24)) as pilot:
        for rid, trained, lora_shown in ((lora_id, "16,384 of 3,418,881 parameters trained", True),
                                         (full_id, "3,386,112 of 3,386,113 parameters trained", False)):
            app.open_run(rid)
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.updates, what="the detail")
            table = app.screen.query_one("#detail-config", DataTable)
            assert trained in str(table.get_cell("_parameters", "value"))
            keys = [str(k.value) for k in table.rows]
            assert ("lora_rank" in keys) == lora_shown and ("lora_targets" in keys) == lora_shown
            await pilot.press("escape")


def test_interpolating_the_b_factors_is_the_weight_space_ensemble() -> None:
    m = classifier("medtui-tiny-vit", "lora")
    initial = {k: v.clone() for k, v in m.checkpoint_state().items()}
    with torch.no_grad():
        for k, p in m.clip.named_parameters():
            if lora.is_adapter_key(k):
                p.normal_()
    layer = next(t for t in m.lora_layers if t.kind == "module")
    wrapper = m.clip.get_submodule(layer.path)
    w0 = lora.frozen_weight(m.clip, layer).clone()
    delta = wrapper.get_delta_weight("default").clone()  # s·B·A
    alpha = 0.3
    state = m.checkpoint_state()
    keys = m.interpolation_keys(state)
    assert keys and all(".lora_B." in k for k in keys)
    from medtui.methods.wise_ft import interpolate

    m.load_checkpoint_state(interpolate(initial, state, alpha, keys))
    ensembled = w0 + wrapper.get_delta_weight("default")
    torch.testing.assert_close(ensembled, (1 - alpha) * w0 + alpha * (w0 + delta))
    assert torch.equal(lora.frozen_weight(m.clip, layer), w0)


def test_exporting_a_lora_checkpoint_as_open_clip_weights_is_refused(tmp_path: Path) -> None:
    from medtui.errors import ConfigError

    ckpt = tmp_path / "stage-1.pt"
    torch.save({"model": {"clip.visual.transformer.resblocks.0.mlp.c_fc.lora_A.default.weight": torch.zeros(2, 2)}}, ckpt)
    with pytest.raises(ConfigError, match="adapters only"):
        export_clip_weights(ckpt, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
