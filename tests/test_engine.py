"""The engine end to end on synthetic tasks: every paradigm and tuning mode, determinism, events."""

from __future__ import annotations

import math

import pytest
import torch

from medtui.engine.run import run_experiment
from medtui.events import BufferUpdated, ListSink, RunFinished, RunStarted, StageFinished, StepLogged, TaskEvaluated
from helpers import fast_config


def matrix(sink: ListSink, n_rows: int, columns: list[str]) -> list[list[float | None]]:
    m: list[list[float | None]] = [[None] * len(columns) for _ in range(n_rows)]
    for e in sink.of(TaskEvaluated):
        m[e.row][columns.index(e.task)] = e.accuracy
    return m


def run(**overrides: object) -> tuple[ListSink, list[list[float | None]]]:
    cfg = fast_config(**overrides)
    sink = ListSink()
    run_experiment(cfg, sink)
    started = sink.of(RunStarted)[0]
    return sink, matrix(sink, len(started.rows), started.columns)


@pytest.mark.parametrize(
    "paradigm, buffer, n_rows",
    [("continual", 0, 3), ("continual", 40, 3), ("joint", 0, 2), ("specialized", 0, 3)],
)
def test_paradigms_fill_the_whole_matrix(paradigm: str, buffer: int, n_rows: int) -> None:
    sink, m = run(paradigm=paradigm, buffer_size=buffer, heldout=("synth-blood",))
    assert len(m) == n_rows and all(len(r) == 3 for r in m)
    assert all(v is not None and 0.0 <= v <= 1.0 for r in m for v in r)
    assert sink.of(RunFinished)[-1].status == "finished"
    assert [e.stage for e in sink.of(StageFinished)] == list(range(n_rows))
    assert sink.of(StepLogged), "training progress must be reported"
    assert all(math.isfinite(e.loss) for e in sink.of(StepLogged))
    started = sink.of(RunStarted)[0]
    assert started.rows[0] == "zero-shot" and started.heldout == ["synth-blood"]
    buffers = sink.of(BufferUpdated)
    if buffer:
        assert [b.stage for b in buffers] == [1, 2]
        assert buffers[0].per_task == {"synth-cxr-a": 40}
        assert buffers[1].per_task == {"synth-cxr-a": 20, "synth-derm": 20}
        assert all(sum(b.per_task.values()) <= buffer for b in buffers)
    else:
        assert not buffers


def test_same_config_same_matrix_on_cpu() -> None:
    _, a = run(buffer_size=20)
    _, b = run(buffer_size=20)
    assert a == b


def test_seed_changes_the_run() -> None:
    s1, _ = run(seed=0)
    s2, _ = run(seed=1)
    assert [e.loss for e in s1.of(StepLogged)] != [e.loss for e in s2.of(StepLogged)]


def test_head_mode_trains_only_the_current_tasks_head() -> None:
    # towers frozen, one head per task: a task's column cannot move until its own stage
    _, m = run(tune="head", heldout=("synth-blood",), lr=1e-2)
    zero, after_first = m[0], m[1]
    assert after_first[1] == zero[1] and after_first[2] == zero[2]
    assert m[2][0] == after_first[0] and m[2][2] == zero[2]


def test_vision_mode_leaves_the_text_tower_untouched() -> None:
    from medtui.data.registry import TaskRegistry
    from medtui.models.classifier import ClipClassifier
    from medtui.models.clip import load_clip

    torch.manual_seed(0)
    spec = TaskRegistry().get("synth-cxr-a")
    model = ClipClassifier(load_clip("medtui-tiny", None), [spec], tune="vision")
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.clip.visual.parameters()}
    assert all(not p.requires_grad for p in model.clip.transformer.parameters())
    assert not model.clip.logit_scale.requires_grad


def test_zero_shot_row_is_the_untrained_model() -> None:
    # row 0 of a continual and a specialized run with the same seed are the same model
    _, a = run(paradigm="continual")
    _, b = run(paradigm="specialized")
    assert a[0] == b[0]


def test_specialized_stages_restart_from_the_pretrained_weights() -> None:
    # stage 2 trains on synth-derm from the initial weights whatever stage 1 trained on, so its evaluation
    # of synth-derm (accuracy, AUC, per class) is the same in two runs whose first task differs
    def derm_at_row2(sink: ListSink) -> tuple:
        (e,) = [e for e in sink.of(TaskEvaluated) if e.row == 2 and e.task == "synth-derm"]
        return e.accuracy, e.auc, e.per_class

    sink_a, _ = run(paradigm="specialized", tasks=("synth-cxr-a", "synth-derm"))
    sink_b, _ = run(paradigm="specialized", tasks=("synth-histo", "synth-derm"))
    assert derm_at_row2(sink_a) == derm_at_row2(sink_b)
    # continual stage 2 starts from stage 1's model: there the same comparison differs
    sink_c, _ = run(paradigm="continual", tasks=("synth-cxr-a", "synth-derm"))
    sink_d, _ = run(paradigm="continual", tasks=("synth-histo", "synth-derm"))
    assert derm_at_row2(sink_c) != derm_at_row2(sink_d)


def test_cancel_stops_after_the_current_step() -> None:
    from medtui.errors import RunCancelled

    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    sink = ListSink()
    with pytest.raises(RunCancelled):
        run_experiment(fast_config(), sink, should_stop=stop)
    assert sink.of(RunFinished)[-1].status == "cancelled"
    assert {e.row for e in sink.of(TaskEvaluated)} == {0}  # row 0 was kept, no stage finished


def test_failure_is_reported_and_raised() -> None:
    from medtui.errors import ModelError

    sink = ListSink()
    with pytest.raises(ModelError):
        run_experiment(fast_config(model="ViT-B-16", pretrained="no-such-tag"), sink)
    finished = sink.of(RunFinished)[-1]
    assert finished.status == "failed" and "no-such-tag" in (finished.error or "")


def test_the_stage_optimizer_is_fused_adamw_and_steps_like_the_default_kernel() -> None:
    """The fused kernel (CPU and CUDA) is an implementation of the same AdamW update."""
    from medtui.engine.train import make_optimizer

    cfg = fast_config()
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(5, 7)), torch.nn.Parameter(torch.randn(3))]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    start = [p.detach().clone() for p in a]
    fused = make_optimizer(a, cfg, torch.device("cpu"))
    plain = torch.optim.AdamW(b, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=False)
    assert fused.defaults["fused"] is True
    for step in range(3):
        grads = [torch.randn_like(p) for p in a]
        for p, q, g in zip(a, b, grads):
            p.grad, q.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    for p, q, p0 in zip(a, b, start):
        assert not torch.allclose(p, p0), "the parameters moved"
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_the_training_rate_leaves_out_a_stages_slow_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first step with one-off costs must not set the rate the ETA is computed from."""
    import types

    from medtui.engine import train as engine_train

    clock = [0.0]
    real_forward = engine_train.forward
    calls = [0]

    def timed_forward(*args: object, **kwargs: object):  # noqa: ANN202
        calls[0] += 1
        clock[0] += 0.5 if calls[0] == 1 else 0.01  # the first step of the run is slow, the rest 10 ms
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(engine_train, "forward", timed_forward)
    monkeypatch.setattr(engine_train, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))
    sink = ListSink()
    run_experiment(fast_config(tasks=("synth-cxr-a",), max_train=128, batch_size=32), sink)
    first = sink.of(StepLogged)[0]
    assert first.step == 4  # one epoch of four steps, logged at its end
    assert first.throughput == pytest.approx(3 * 32 / 0.03)  # steps 2-4: 96 images in 30 ms


def _autocast_seen(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, bool]]:
    """Record, for every image-tower pass, whether the model was training and CPU autocast was on."""
    from medtui.models.classifier import ClipClassifier

    seen: set[tuple[str, bool]] = set()
    encode = ClipClassifier.encode_images

    def spy(self: ClipClassifier, x: torch.Tensor) -> torch.Tensor:
        phase = "eval" if not self.training else ("train" if torch.is_grad_enabled() else "norm pass")
        seen.add((phase, torch.is_autocast_enabled("cpu")))
        return encode(self, x)

    monkeypatch.setattr(ClipClassifier, "encode_images", spy)
    return seen


def test_amp_bf16_runs_training_the_norm_pass_and_evaluation_under_cpu_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    from medtui.engine.train import cpu_has_native_bf16
    from medtui.events import LogLine

    seen = _autocast_seen(monkeypatch)
    sink, m = run(amp="bf16")
    assert seen == {("train", True), ("norm pass", True), ("eval", True)}
    assert sink.of(RunFinished)[-1].status == "finished"
    assert all(v is not None and 0.0 <= v <= 1.0 for r in m for v in r)
    notes = [e for e in sink.of(LogLine) if "bf16 autocast on the CPU" in e.message]
    assert len(notes) == 1 and (notes[0].level == "info") == cpu_has_native_bf16()


def test_amp_auto_keeps_cpu_runs_in_full_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _autocast_seen(monkeypatch)
    run()
    assert seen == {("train", False), ("norm pass", False), ("eval", False)}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine where device auto is the CPU")
def test_amp_fp16_on_a_cpu_run_fails_with_one_line() -> None:
    from medtui.errors import ConfigError

    with pytest.raises(ConfigError, match="amp fp16 needs a CUDA device"):
        run(amp="fp16", device="auto")


@pytest.mark.parametrize("overrides", [{"method": "lwf"}, {"method": "ewc", "buffer_size": 20}, {"method": "zscl"}, {"tune": "lora"}],
                         ids=["lwf", "ewc+buffer", "zscl", "lora"])
def test_amp_bf16_on_the_cpu_runs_every_kind_of_hook(overrides: dict[str, object]) -> None:
    """Frozen copies, penalties, distillation and adapters all meet bf16 activations under CPU autocast."""
    sink, m = run(amp="bf16", **overrides)
    assert sink.of(RunFinished)[-1].status == "finished"
    assert all(math.isfinite(e.loss) for e in sink.of(StepLogged))
    assert all(v is not None for r in m for v in r)


def test_text_lr_scale_gives_the_text_tower_its_own_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    from medtui.engine import train as engine_train
    from medtui.models.classifier import ClipClassifier

    made: list[torch.optim.Optimizer] = []
    real = engine_train.make_optimizer

    def spy(params, config, device):  # noqa: ANN001, ANN202
        made.append(real(params, config, device))
        return made[-1]

    monkeypatch.setattr(engine_train, "make_optimizer", spy)
    captured: list[ClipClassifier] = []
    monkeypatch.setattr(ClipClassifier, "refresh_text_cache", lambda self: captured.append(self) or self._text_cache.clear())
    sink, m = run(text_lr_scale=0.25)
    assert sink.of(RunFinished)[-1].status == "finished"
    model = captured[0]
    text = {id(p) for n, p in model.clip.named_parameters() if not n.startswith("visual.") and p.requires_grad}
    image = {id(p) for p in model.clip.visual.parameters()}
    for opt in made:  # one optimizer per stage, each with the image tower at lr and the text tower at lr / 4
        own, txt = opt.param_groups
        assert {id(p) for p in own["params"]} == image and {id(p) for p in txt["params"]} == text
        assert txt["initial_lr"] == pytest.approx(own["initial_lr"] / 4)
    assert len(made) == 2
    one = model.optimizer_groups(1e-3)
    assert len(one) == 1 and len(one[0]["params"]) == len(model.trainable_parameters())


def test_a_bf16_cpu_run_resumes_to_the_same_matrix(tmp_path) -> None:  # noqa: ANN001
    from medtui.engine.run import ResumePoint

    cfg = fast_config(amp="bf16", buffer_size=20, method="lwf", keep_checkpoints=2)
    full = ListSink()
    run_experiment(cfg, full, checkpoint_dir=tmp_path)
    resumed = ListSink()
    run_experiment(cfg, resumed, resume=ResumePoint(1, tmp_path / "stage-1.pt"))
    assert resumed.matrix()[2:] == full.matrix()[2:]
