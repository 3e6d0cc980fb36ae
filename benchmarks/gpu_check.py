"""The GPU path measured: training and evaluation throughput, share of the bf16 peak, a 5-task run end to end.

    bash benchmarks/gpu_check.sh                     # on a GPU: ViT-B-16 at 224 px, bf16 autocast (≤ 6 min)
    bash benchmarks/gpu_check.sh --peak-tflops 312   # another GPU's dense bf16 peak (A100: 312)
    bash benchmarks/gpu_check.sh --compile           # also time the image tower under torch.compile
    python benchmarks/gpu_check.py --device cpu      # the CPU fallback: a tiny ViT, a few images (seconds)

Parts, all through medtui's own code:
1. steps: training steps of the image + text towers on one batch shape (fused AdamW, bf16
   autocast, no host sync in the loop), with the task data on the device, then in pinned
   host memory (staging buffers, side-stream copies), then optionally compiled; images/s
   and, on CUDA, the share of the bf16 peak (forward + backward ≈ 3 × the forward GFLOPs
   per image: 35.1 for ViT-B/16 at 224 px).
2. eval: one evaluation point over every task (inference mode, large batches); images/s.
3. run: ``run_experiment`` of a 5-task continual sequence (2,000 training images per task,
   random weights, synthetic images at the model's resolution), wall time end to end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medtui.config import RunConfig, resolve
from medtui.data.synthetic import SYNTHETIC_SPECS, generate
from medtui.engine import run as engine_run
from medtui.engine.evaluate import evaluate_row
from medtui.engine.tensors import to_task_tensors
from medtui.engine.train import autocast
from medtui.events import StageFinished, StepLogged
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip

#: Forward GFLOPs per image of the default model (ViT-B/16 at 224 px).
VIT_B16_GFLOPS = 35.1
#: Dense bf16 peak of an H200 (TFLOP/s); pass --peak-tflops for another GPU.
H200_BF16_TFLOPS = 989.0


def task_data(n_tasks: int, n_train: int, n_test: int, size: int) -> list:
    """Synthetic tasks (the five kinds in turn, each at its own seed), upsampled to ``size`` px."""
    out = []
    for i in range(n_tasks):
        spec = SYNTHETIC_SPECS[i % len(SYNTHETIC_SPECS)]
        data = generate(spec, seed=2000 + i, n_train=n_train, n_val=2, n_test=n_test)
        k = max(1, size // spec.image_size)
        for split in data.splits.values():
            split.images = np.repeat(np.repeat(split.images, k, axis=1), k, axis=2)
        out.append(data)
    return out


def write_npz_tasks(datas: list, folder: Path) -> list[dict]:
    """The tasks as npz files declared as [[task]] tables (how a run loads them)."""
    tables = []
    for i, d in enumerate(datas):
        arrays = {}
        for split, s in d.splits.items():
            arrays[f"{split}_images"] = s.images[..., 0] if s.images.shape[-1] == 1 else s.images
            arrays[f"{split}_labels"] = s.labels.reshape(-1, 1)
        path = folder / f"gpu{i}.npz"
        np.savez(path, **arrays)
        sp = d.spec
        tables.append({"name": f"gpu{i}-{sp.name.removeprefix('synth-')}", "domain": sp.domain, "format": "npz",
                       "path": str(path), "classes": list(sp.classes), "templates": list(sp.templates),
                       "image_size": int(d.splits["train"].images.shape[1]), "channels": sp.channels})
    return tables


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model: ClipClassifier, split, name: str, device: torch.device, batch: int, steps: int, amp: str) -> float:
    """Images/s of ``steps`` training steps (after 3 warm-up steps) on batches gathered from ``split``."""
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4, weight_decay=0.01, fused=device.type == "cuda")
    rng = np.random.default_rng(0)
    model.train()
    loss_sum = torch.zeros((), device=device)
    t0 = 0.0
    for s in range(steps + 3):
        if s == 3:
            sync(device)
            t0 = time.perf_counter()
        x, y = split.gather(rng.choice(len(split), size=batch, replace=len(split) < batch), device)
        with autocast(device, amp):
            logits = model.logits(model.encode_images(model.prepare(x)), name)
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach()  # no .item(): the loop never waits for the device
    sync(device)
    if not torch.isfinite(loss_sum):
        raise SystemExit("training diverged (non-finite loss)")
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    """Run the three parts and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto: CUDA when present, else the CPU fallback")
    ap.add_argument("--model", default=None, help="default: ViT-B-16 on CUDA, medtui-tiny-vit on CPU")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 256 on CUDA, 16 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps per variant (default 30 / 3)")
    ap.add_argument("--n-train", type=int, default=None, help="training images per task of the run (default 2000 / 32)")
    ap.add_argument("--n-test", type=int, default=None, help="test images per task (default 500 / 16)")
    ap.add_argument("--tasks", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None, help="epochs per stage of the run (default 2 / 1)")
    ap.add_argument("--gflops-per-image", type=float, default=VIT_B16_GFLOPS, help="forward GFLOPs per image")
    ap.add_argument("--peak-tflops", type=float, default=H200_BF16_TFLOPS, help="the GPU's dense bf16 peak")
    ap.add_argument("--amp", default="bf16", choices=("bf16", "fp16", "off"))
    ap.add_argument("--compile", action="store_true", help="also time the image tower under torch.compile")
    ap.add_argument("--skip-run", action="store_true", help="parts 1 and 2 only")
    args = ap.parse_args()

    device = engine_run.pick_device(args.device)
    gpu = device.type == "cuda"
    model_name = args.model or ("ViT-B-16" if gpu else "medtui-tiny-vit")
    batch = args.batch_size or (256 if gpu else 16)
    steps = args.steps or (30 if gpu else 3)
    n_train = args.n_train or (2000 if gpu else 32)
    n_test = args.n_test or (500 if gpu else 16)
    epochs = args.epochs or (2 if gpu else 1)
    t_start = time.perf_counter()
    name = torch.cuda.get_device_name(device) if gpu else "CPU fallback"
    print(f"torch {torch.__version__}, device {device} ({name}), model {model_name}, amp {args.amp if gpu else 'off (CPU)'}")

    torch.manual_seed(0)
    loaded = load_clip(model_name, None, device)
    size = loaded.image_size
    datas = task_data(args.tasks, n_train, n_test, size)
    model = ClipClassifier(loaded, [d.spec for d in datas], "full").to(device)  # the model first, then the data
    on_device = [to_task_tensors(d, device) for d in datas]
    first = on_device[0]
    print(f"images {size} px, batch {batch}, {steps} timed steps per variant; "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")

    # -- 1. training steps ------------------------------------------------------------------
    flops = 3 * args.gflops_per_image * 1e9

    def line(label: str, ips: float) -> None:
        share = f"{100 * ips * flops / (args.peak_tflops * 1e12):5.1f} % of {args.peak_tflops:g} TFLOP/s bf16 peak" if gpu else ""
        print(f"train {label:<28} {ips:9.1f} img/s  {share}")

    ips = time_steps(model, first.train, first.spec.name, device, batch, steps, args.amp)
    line("(data on device)", ips)
    if gpu:
        host = to_task_tensors(datas[0], device, budget=[0])  # no device budget: pinned host memory, staged copies
        line("(data pinned on host)", time_steps(model, host.train, first.spec.name, device, batch, steps, args.amp))
    if args.compile:
        model.clip.visual.forward = torch.compile(model.clip.visual.forward)
        time_steps(model, first.train, first.spec.name, device, batch, 2, args.amp)  # compiles
        line("(image tower compiled)", time_steps(model, first.train, first.spec.name, device, batch, steps, args.amp))

    # -- 2. evaluation ------------------------------------------------------------------------
    eval_bs = 4 * batch if gpu else 64
    evaluate_row(model, on_device[:1], 0, "warm-up", device, eval_bs, args.amp)
    sync(device)
    t0 = time.perf_counter()
    evs = evaluate_row(model, on_device, 0, "zero-shot", device, eval_bs, args.amp)
    sync(device)
    n_eval = sum(e.n for e in evs)
    print(f"eval  {'(one point, every task)':<28} {n_eval / (time.perf_counter() - t0):9.1f} img/s  ({n_eval} images, batch {eval_bs})")
    del model, on_device
    if gpu:
        torch.cuda.empty_cache()

    # -- 3. a continual run end to end ----------------------------------------------------------
    if not args.skip_run:
        with tempfile.TemporaryDirectory() as tmp:
            tables = write_npz_tasks(datas, Path(tmp))
            cfg = resolve(RunConfig(tasks=tuple(t["name"] for t in tables), user_tasks=tuple(tables), model=model_name,
                                    epochs=epochs, batch_size=batch, eval_batch_size=eval_bs, device=str(device),
                                    amp=args.amp if gpu else "auto", keep_checkpoints=0, lr=1e-4))
            stage_s: list[float] = []
            rates: list[float] = []

            def sink(ev: object) -> None:
                if isinstance(ev, StageFinished) and ev.stage:
                    stage_s.append(ev.seconds)
                elif isinstance(ev, StepLogged):
                    rates.append(ev.throughput)

            t0 = time.perf_counter()
            engine_run.run_experiment(cfg, sink)
            wall = time.perf_counter() - t0
        print(f"run   {args.tasks} tasks x {n_train} train images x {epochs} epochs: {wall:.1f} s end to end "
              f"(stages {', '.join(f'{s:.1f}' for s in stage_s)} s; logged training rate median "
              f"{float(np.median(rates)) if rates else 0:.0f} img/s)")
    print(f"gpu_check done in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
