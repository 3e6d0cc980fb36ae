"""LoRA against full fine-tuning: trained parameters, checkpoint bytes, training throughput.

    python benchmarks/bench_lora.py [--steps 20] [--big]

For each model: all parameters, the adapters' count at rank 8 with the default targets
(checked against r·(in + out) per linear target and r·(in·k² + out) per convolution), the
bytes of a stage checkpoint's model part for ``full`` and ``lora``, and training images/s
(forward, backward, AdamW step, batch 64, 32 px, CPU) for both. ``--big`` adds ViT-B-16 and
RN50 (counts and bytes only; random weights, nothing downloaded).
"""

from __future__ import annotations

import argparse
import io
import os
import time

import torch
import torch.nn.functional as F

from medtui.data.registry import TaskRegistry
from medtui.engine.run import pick_device
from medtui.models import lora
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip

TASK = "synth-cxr-a"


def build(model: str, tune: str) -> ClipClassifier:
    torch.manual_seed(0)
    return ClipClassifier(load_clip(model, None), [TaskRegistry().get(TASK)], tune)


def hand_count(m: ClipClassifier, rank: int = 8) -> int:
    total = 0
    for layer in m.lora_layers:
        w = lora.frozen_weight(m.clip, layer)
        out, cin = w.shape[0], w.shape[1]
        total += rank * (cin * (w.shape[2] * w.shape[3] if w.dim() == 4 else 1) + out)
    return total


def checkpoint_bytes(m: ClipClassifier) -> int:
    buf = io.BytesIO()
    torch.save(m.checkpoint_state(), buf)
    return buf.tell()


def images_per_s(m: ClipClassifier, steps: int, size: int = 32, batch: int = 64) -> float:
    x = torch.randint(0, 256, (batch, 1, size, size), dtype=torch.uint8)
    y = torch.randint(0, 2, (batch,))
    opt = torch.optim.AdamW(m.trainable_parameters(), lr=1e-4)
    m.train()
    m.refresh_text_cache()

    def step() -> None:
        loss = F.cross_entropy(m.logits(m.encode_images(m.prepare(x)), TASK), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--big", action="store_true", help="also count ViT-B-16 and RN50")
    args = ap.parse_args()
    pick_device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, rank 8, alpha 16, default targets")
    models = ["medtui-tiny", "medtui-tiny-vit"] + (["ViT-B-16", "RN50"] if args.big else [])
    for name in models:
        full, adapted = build(name, "full"), build(name, "lora")
        n_all = sum(p.numel() for p in full.parameters())
        n_lora = sum(p.numel() for p in adapted.trainable_parameters())
        hand = hand_count(adapted)
        b_full, b_lora = checkpoint_bytes(full), checkpoint_bytes(adapted)
        print(f"{name}: targets {', '.join(adapted.lora_targets)} on {len(adapted.lora_layers)} layers")
        print(f"  parameters {n_all:,}; adapters {n_lora:,} ({100 * n_lora / n_all:.2f}%), "
              f"by hand {hand:,} -> {'OK' if hand == n_lora else 'MISMATCH'}")
        print(f"  checkpoint model part: full {b_full / 1e6:.2f} MB, lora {b_lora / 1e6:.3f} MB (ratio {b_lora / b_full:.4f})")
        if name.startswith("medtui-"):
            r_full, r_lora = images_per_s(full, args.steps), images_per_s(adapted, args.steps)
            print(f"  training: full {r_full:.0f} img/s, lora {r_lora:.0f} img/s (ratio lora/full {r_lora / r_full:.2f})")


if __name__ == "__main__":
    os.environ.setdefault("MEDTUI_THREADS", "2")
    main()
