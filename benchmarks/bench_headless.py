"""Headless speed: the default run's wall time, and medtui's training throughput against a bare open_clip loop.

    python benchmarks/bench_headless.py                 # both, on the CPU
    python benchmarks/bench_headless.py --skip-default  # throughput only
    python benchmarks/bench_headless.py --device cuda --model ViT-B-16 --image-size 224 --batch-size 256

The throughput comparison trains the same model on the same uint8 data with the same
optimizer and loss, once through medtui's stage loop (``train_stage``, with its method
hooks, progress events and cancellation checks) and once as a plain loop written against
open_clip directly; the rounds alternate so that both see the same machine state.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medtui.config import RunConfig, resolve
from medtui.data.base import Split, TaskData, TaskSpec
from medtui.engine.tensors import to_task_tensors
from medtui.engine.train import autocast, cosine_lr, epoch_batches, train_stage
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip
from medtui.engine.frozen import FrozenModels
from medtui.engine.run import build_method
from medtui.methods.base import HookContext
from medtui.protocols import Stage

DEFAULT_BUDGET_S = 120.0
RATIO_BUDGET = 0.90


def bench_default(db_dir: Path) -> tuple[float, list[tuple[float, float]]]:
    """Wall time of ``medtui run --headless`` with no flags (the built-in default), in a fresh store.

    Also returns each ETA the run printed, as (seconds since the start, ETA in seconds), to check
    the ETA against when the run really ended.
    """
    from medtui.eta import parse_duration

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "medtui", "run", "--headless", "--db", str(db_dir / "bench.db")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    etas, tail = [], []
    assert proc.stderr is not None
    for line in proc.stderr:  # not a terminal: one plain line per event, progress lines end in "ETA <duration>"
        tail = (tail + [line])[-3:]
        if " · ETA " in line:
            left = parse_duration(line.rsplit(" · ETA ", 1)[1].strip())
            if left is not None:
                etas.append((time.perf_counter() - t0, left))
    code = proc.wait()
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"default run failed ({code}): {tail}")
    return wall, etas


def eta_report(wall: float, etas: list[tuple[float, float]]) -> list[str]:
    """How far the first ETA, and the one printed nearest half-time, were from when the run really ended.

    The run's end here includes printing the results and exiting Python (a fraction of a second).
    """
    if not etas:
        return ["no ETA printed"]
    picks = [("first ETA", etas[0]), ("ETA at half-time", min(etas, key=lambda e: abs(e[0] - wall / 2)))]
    out = []
    for what, (at, left) in picks:
        actual = wall - at
        out.append(f"{what} (at {at:.1f} s): {left:.1f} s left predicted, {actual:.1f} s actual ({100 * (left - actual) / actual:+.0f}%)")
    return out


def make_task(n: int, size: int, channels: int, seed: int = 0) -> TaskData:
    """A random two-class task of ``n`` uint8 images (content does not matter for throughput)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, channels), dtype=np.uint8)
    labels = rng.integers(0, 2, size=n).astype(np.int64)
    spec = TaskSpec("bench", "benchmark", ("normal", "abnormal"), ("a photo of {}.", "an image of {}."), "synthetic", size, channels)
    split = Split(images, labels)
    return TaskData(spec, {"train": split, "test": split})


def medtui_round(cfg: RunConfig, task: TaskData, device: torch.device) -> float:
    """Images per second of one stage through medtui's training loop."""
    torch.manual_seed(0)
    tt = to_task_tensors(task, device)
    model = ClipClassifier(load_clip(cfg.model, cfg.pretrained, device), [tt.spec], cfg.tune).to(device)
    method = build_method(cfg)
    stage = Stage(1, "bench", ("bench",))
    ctx = HookContext(stage, [stage], model, {"bench": tt}, device, cfg.amp, cfg, np.random.default_rng(1),
                      lambda e: None, FrozenModels(None), lambda name: None)
    _sync(device)
    t0 = time.perf_counter()
    train_stage(model, method, None, ctx, cfg, device, lambda: False, np.random.default_rng(0))
    _sync(device)
    return len(tt.train) * cfg.epochs / (time.perf_counter() - t0)


def bare_round(cfg: RunConfig, task: TaskData, device: torch.device) -> float:
    """Images per second of the same work written directly against open_clip."""
    import open_clip

    torch.manual_seed(0)
    loaded = load_clip(cfg.model, cfg.pretrained, device)  # registers the tiny configs with open_clip
    model = loaded.model
    tokenizer = open_clip.get_tokenizer(cfg.model)
    spec = task.spec
    tokens = tokenizer([t.format(c) for c in spec.classes for t in spec.templates]).to(device)
    x_all = torch.from_numpy(task.splits["train"].images).permute(0, 3, 1, 2).contiguous().to(device)
    y_all = torch.from_numpy(task.splits["train"].labels).to(device)
    mean = torch.tensor(loaded.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(loaded.std, device=device).view(1, 3, 1, 1)
    model.logit_scale.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    # the same AdamW kernel as medtui's stages (fused on the CPU and CUDA): the ratio measures the loop
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type in ("cuda", "cpu") or None)
    n = len(y_all)
    steps = len(epoch_batches(n, cfg.batch_size, np.random.default_rng(0))) * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, steps, int(cfg.warmup * steps)))
    rng = np.random.default_rng(0)
    model.train()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for idx in epoch_batches(n, cfg.batch_size, rng):
            i = torch.from_numpy(idx).to(device)
            x = x_all.index_select(0, i).float().div_(255.0)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] != loaded.image_size:
                x = F.interpolate(x, size=(loaded.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
            x = (x - mean) / std
            with autocast(device, cfg.amp):
                img = F.normalize(model.encode_image(x), dim=-1)
                txt = F.normalize(model.encode_text(tokens), dim=-1)
                txt = F.normalize(txt.view(len(spec.classes), len(spec.templates), -1).mean(1), dim=-1)
                logits = model.logit_scale.exp() * img @ txt.t()
                loss = F.cross_entropy(logits.float(), y_all.index_select(0, i))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    _sync(device)
    return n * cfg.epochs / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    """Run the benchmarks and print figures with verdicts."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="medtui-tiny")
    ap.add_argument("--pretrained", default=None)
    ap.add_argument("--image-size", type=int, default=32, help="native size of the benchmark images")
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--n", type=int, default=1024, help="training images per round")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--skip-default", action="store_true", help="skip the default-run wall time")
    args = ap.parse_args()

    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    if not args.skip_default:
        with tempfile.TemporaryDirectory() as d:
            wall, etas = bench_default(Path(d))
        verdict = "OK" if wall < DEFAULT_BUDGET_S else "TOO SLOW"
        print(f"default headless run: {wall:.1f} s (budget {DEFAULT_BUDGET_S:.0f} s) -> {verdict}")
        for line in eta_report(wall, etas):
            print(line)

    cfg = resolve(replace(RunConfig(), model=args.model, pretrained=args.pretrained, batch_size=args.batch_size,
                          epochs=args.epochs, device=args.device, tasks=("bench",)))
    task = make_task(args.n, args.image_size, args.channels)
    medtui_round(cfg, task, device)  # warm-up: first-call allocations and kernel selection
    bare_round(cfg, task, device)
    ours, bare = [], []
    for _ in range(args.rounds):
        ours.append(medtui_round(cfg, task, device))
        bare.append(bare_round(cfg, task, device))
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    ratio = m_ours / m_bare
    print(f"model {args.model}, {args.n} images of {args.image_size}px x{args.channels}, batch {args.batch_size}, {args.rounds} rounds")
    print(f"medtui train_stage : {m_ours:8.1f} img/s (median; rounds {', '.join(f'{v:.0f}' for v in ours)})")
    print(f"bare open_clip loop: {m_bare:8.1f} img/s (median; rounds {', '.join(f'{v:.0f}' for v in bare)})")
    print(f"ratio medtui/bare  : {ratio:.3f} (budget >= {RATIO_BUDGET:.2f}) -> {'OK' if ratio >= RATIO_BUDGET else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
