"""CPU levers of the training step, A/B in one process: channels-last convolutions, the AdamW kernel, bf16 autocast.

    python benchmarks/bench_cpu_levers.py [--steps 40] [--model medtui-tiny] [--compile]

Six copies of the same model (seed 0) train side by side on the same batches, one step of
each in turn, so a busy machine slows all alike: contiguous or channels-last layout, and AdamW
as a for-loop over the tensors (the CPU default), ``foreach`` or ``fused`` (what medtui uses).
A seventh copy is medtui's step under ``--amp bf16`` (channels-last, fused, the forward pass
under CPU bf16 autocast), which pays off on processors with bf16 instructions. With
``--compile`` an eighth copy runs medtui's full-precision step with the image tower under
``torch.compile`` (its compile time, the first steps, is printed apart).
The best step time of each is printed (the least disturbed one), with its optimizer share.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from medtui.data.synthetic import SYNTHETIC_SPECS, generate
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip


class Variant(NamedTuple):
    """One copy of the model: its layout, AdamW kernel, precision and whether the image tower is compiled."""

    channels_last: bool
    adamw: str
    bf16: bool = False
    compiled: bool = False


def main() -> None:
    """Time the variants and print best step times and ratios to the plain variant."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--model", default="medtui-tiny")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="add a copy whose image tower runs under torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = SYNTHETIC_SPECS[2]
    data = generate(spec, n_train=10 * args.batch_size, n_val=2, n_test=2)
    x_all = torch.from_numpy(data.splits["train"].images).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(data.splits["train"].labels.astype(np.int64))
    variants = [Variant(cl, kernel) for cl in (False, True) for kernel in ("for-loop", "foreach", "fused")]
    variants.append(Variant(True, "fused", bf16=True))
    if args.compile:
        variants.append(Variant(True, "fused", compiled=True))
    runs = []
    for cl, kernel, _, compiled in variants:
        torch.manual_seed(0)
        m = ClipClassifier(load_clip(args.model, None, "cpu"), [spec], "full")
        m.channels_last = cl  # the layout prepare() hands the tower
        m.clip.visual.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
        opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-3, weight_decay=0.01,
                                foreach=kernel == "foreach", fused=kernel == "fused" or None)
        m.train()
        if compiled:
            m.clip.visual.forward = torch.compile(m.clip.visual.forward)
        runs.append((m, opt))
    best = {v: (float("inf"), 0.0) for v in variants}
    b = args.batch_size
    first = {v: 0.0 for v in variants}  # the three untimed steps: kernel set-up, and compilation
    for s in range(args.steps + 3):
        sl = slice((s % 10) * b, (s % 10 + 1) * b)
        for v, (m, opt) in zip(variants, runs):
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16) if v.bf16 else contextlib.nullcontext():
                logits = m.logits(m.encode_images(m.prepare(x_all[sl])), spec.name)
            loss = F.cross_entropy(logits.float(), y_all[sl])
            opt.zero_grad()
            loss.backward()
            t1 = time.perf_counter()
            opt.step()
            t2 = time.perf_counter()
            if s < 3:
                first[v] += t2 - t0
            if s >= 3 and t2 - t0 < best[v][0]:
                best[v] = (t2 - t0, t2 - t1)
    base = best[variants[0]][0]  # the plain step: contiguous layout, for-loop AdamW
    print(f"{args.model}, batch {b}, {args.threads} thread(s), best of {args.steps} interleaved steps")
    for v in variants:
        step, opt_s = best[v]
        print(f"channels_last={str(v.channels_last):<5} adamw={v.adamw:<8} amp={'bf16' if v.bf16 else 'off ':<4}"
              f"{' compiled' if v.compiled else ''} {1000 * step:7.1f} ms/step "
              f"(optimizer {1000 * opt_s:5.1f} ms)  ratio to plain {step / base:.2f}"
              + (f"  (first 3 steps, compiling: {first[v]:.1f} s)" if v.compiled else ""))


if __name__ == "__main__":
    main()
