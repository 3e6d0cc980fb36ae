"""medtui against Avalanche on the same continual-learning work, side by side in one process.

    pip install -e ".[peers]"              # avalanche-lib (not needed by medtui or its tests)
    python benchmarks/bench_vs_avalanche.py                 # 3 seeds; MedMNIST pair when its files are found
    python benchmarks/bench_vs_avalanche.py --seeds 1 --no-medmnist
    python benchmarks/bench_vs_avalanche.py --medtui-amp auto      # medtui in full precision
    python benchmarks/bench_vs_avalanche.py --avalanche-amp bf16 --avalanche-adamw fused   # both levers lent

The same work through both: the same open_clip model (``medtui-tiny`` from random weights)
and text-tower classifier (medtui's ``ClipClassifier``, wrapped as an Avalanche
``MultiTaskModule``), the same task sequences (three synthetic tasks; PneumoniaMNIST →
BreastMNIST when the files are present), epochs, batch size, AdamW with the same learning
rate, weight decay and per-stage warm-up + cosine schedule, a fresh optimizer state at every
stage (medtui makes a new AdamW per stage; Avalanche's ``make_optimizer`` keeps Adam's moments
across experiences unless told ``reset_optimizer_state=True``, which the benchmark tells it:
kept moments damp the first steps of a stage, so the two would train differently), the same seed, batch-norm
statistics re-estimated after every stage (medtui's default; an Avalanche plugin doing the
same pass), and the same evaluation (zero-shot, then after every stage on every task).
Strategies: naive sequential fine-tuning and experience replay with the same total buffer
(medtui ``--buffer-size K``; Avalanche ``ReplayPlugin(mem_size=K)``; both add up to one
batch of replay samples to each batch: medtui draws a full batch from the buffer at every
step, Avalanche walks through its memory in batches and restarts it, so its last memory batch
of a pass is short and it processes a few per cent fewer images per stage; the report counts
the images each tool put through the model and gives the rate per processed image too).
medtui runs as ``medtui run`` does, writing its
store; Avalanche gets its most favourable setup: uint8 tensors in memory, no per-sample
transforms (the wrapper converts whole batches), no loggers, class embeddings cached per
evaluation pass. The AdamW kernel is each tool's own: medtui steps with the fused kernel, and
Avalanche with ``torch.optim.AdamW(params, lr)`` as its examples make it (on the CPU the
for-loop over the tensors); ``--avalanche-adamw fused`` gives Avalanche the fused kernel too,
which separates what the kernel buys from what the loop does. Precision likewise: on a CPU
with bf16 instructions medtui runs as ``medtui run --amp bf16`` (training, the batch-norm pass
and evaluation under CPU bf16 autocast; ``--medtui-amp auto`` for its full-precision default),
and Avalanche in full precision, as its supervised strategies train (they have no mixed
precision); ``--avalanche-amp bf16`` lends it medtui's autocast to separate that lever too.

Accuracy agreement: each tool runs every seed; the mean ``last`` of the two tools agree
when their difference is within two standard errors of the seed spread
(2·sqrt(s_a²/n + s_b²/n)), i.e. within seed noise. Times are end to end (data, model,
training, evaluation, store), measured in the same process with the tools alternating,
so the ratios are meaningful on a shared machine even when absolute times are not.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from medtui.config import RunConfig, resolve
from medtui.data.registry import TaskRegistry
from medtui.engine import run as engine_run
from medtui.engine.train import cosine_lr, cpu_has_native_bf16, epoch_batches
from medtui.events import MultiSink, TaskEvaluated
from medtui.metrics import compute_metrics
from medtui.models.classifier import ClipClassifier
from medtui.models.clip import load_clip
from medtui.store.sink import StoreSink
from medtui.store.store import Store

SYNTHETIC = ("synth-cxr-a", "synth-derm", "synth-histo")
MEDMNIST = ("pneumoniamnist", "breastmnist")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    """One run of one tool: its matrix (rows = evaluation points) and where the time went."""

    matrix: np.ndarray
    total: float = 0.0
    train: float = 0.0
    eval: float = 0.0
    train_images: int = 0
    cpu: float = 0.0
    #: images that went through the model in training steps, replay samples included
    processed: int = 0
    metrics: dict[str, float | None] = field(default_factory=dict)


def nominal_images(cfg: RunConfig, n_train: list[int]) -> int:
    """Training images of the run's own tasks (replay samples come on top, alike for both tools)."""
    return sum(n * cfg.epochs for n in n_train)


# ------------------------------------------------------------------------------------ medtui
class _Timer:
    """Wraps engine functions to add their wall time to a bucket."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {"train": 0.0, "eval": 0.0}
        self._saved: list[tuple[Any, str, Any]] = []

    def wrap(self, module: Any, name: str, bucket: str) -> None:
        fn = getattr(module, name, None)
        if fn is None:
            raise SystemExit(f"medtui.engine.run has no {name}: update the benchmark's timers")

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.spent[bucket] += time.perf_counter() - t0

        self._saved.append((module, name, fn))
        setattr(module, name, timed)

    def restore(self) -> None:
        for module, name, fn in reversed(self._saved):
            setattr(module, name, fn)
        self._saved.clear()


def run_medtui(cfg: RunConfig, db: Path, n_train: list[int]) -> Result:
    """``medtui run`` in-process (store sink included), timed by phase."""
    from medtui.engine import train as engine_train

    timer = _Timer()
    processed = 0
    forward = engine_train.forward

    def counted(model: Any, tasks: Any, batch: Any, *a: Any, **k: Any) -> Any:
        nonlocal processed
        processed += len(batch.indices)
        return forward(model, tasks, batch, *a, **k)

    engine_train.forward = counted
    timer.wrap(engine_run, "train_stage", "train")
    timer.wrap(engine_run, "recalibrate_norm_stats", "train")
    timer.wrap(engine_run, "evaluate_row", "eval")
    cells: dict[tuple[int, str], float] = {}

    def collect(ev: Any) -> None:
        if isinstance(ev, TaskEvaluated):
            cells[(ev.row, ev.task)] = ev.accuracy

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with Store(db) as store:
            run_id = store.create_run(cfg, status="running")
            engine_run.run_experiment(cfg, MultiSink(StoreSink(store, run_id), collect))
    finally:
        timer.restore()
        engine_train.forward = forward
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    cols = list(cfg.columns)
    m = np.full((cfg.n_stages + 1, len(cols)), np.nan)
    for (i, t), acc in cells.items():
        m[i, cols.index(t)] = acc
    return Result(m, total, timer.spent["train"], timer.spent["eval"], nominal_images(cfg, n_train), cpu, processed=processed)


# --------------------------------------------------------------------------------- Avalanche
def run_avalanche(cfg: RunConfig, setup: str = "tuned", adamw: str = "default", amp: str = "off") -> Result:
    """The same run written as an Avalanche user would (Naive, or Naive + ReplayPlugin).

    ``tuned``: uint8 tensors, whole-batch preprocessing in the model, experience accuracy only,
    no logger. ``documented``: the setup of Avalanche's examples: a per-sample transform in the
    dataset, the default evaluator's accuracy and loss metrics and a text logger (to a null stream).
    ``amp="bf16"``: the model's forward passes (training, the batch-norm pass, evaluation) under
    CPU bf16 autocast, as ``medtui run --amp bf16`` has them; Avalanche's supervised strategies
    have no mixed precision of their own, so this is medtui's lever lent to it.
    """
    import contextlib

    from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
    from avalanche.benchmarks.scenarios.task_aware import task_incremental_benchmark
    from avalanche.benchmarks.utils import as_classification_dataset
    from avalanche.benchmarks.utils import TransformGroups
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.logging import TextLogger
    from avalanche.models import MultiTaskModule
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin, LRSchedulerPlugin, ReplayPlugin, SupervisedPlugin

    def precision() -> contextlib.AbstractContextManager:
        return torch.autocast("cpu", dtype=torch.bfloat16) if amp == "bf16" else contextlib.nullcontext()

    class ClipTasks(MultiTaskModule):
        """medtui's classifier for Avalanche: uint8 batches in, each sample scored over its task's classes."""

        def __init__(self, clf: ClipClassifier, names: list[str]) -> None:
            super().__init__()
            self.clf, self.names = clf, names
            self._eval_emb: dict[str, torch.Tensor] = {}
            self.processed = 0  # images through training steps, replay samples included

        def adaptation(self, experience: Any) -> None:
            """Nothing to grow: each task's classes are fixed by its prompts."""
            if self.training:
                self.known_train_tasks_labels |= set(experience.task_labels)

        def train(self, mode: bool = True) -> "ClipTasks":
            self._eval_emb.clear()  # the text tower trains: embeddings are fresh for each evaluation pass
            self.clf.train(mode)
            self.training = mode
            return self

        def forward(self, x: torch.Tensor, task_labels: torch.Tensor | int) -> torch.Tensor:
            if self.training and torch.is_grad_enabled():
                self.processed += x.shape[0]
            with precision():
                return self._forward(x, task_labels).float()

        def _forward(self, x: torch.Tensor, task_labels: torch.Tensor | int) -> torch.Tensor:
            feats = self.clf.encode_images(self.clf.prepare(x) if x.dtype == torch.uint8 else x)
            tl = torch.full((x.shape[0],), task_labels) if isinstance(task_labels, int) else task_labels
            tasks = [self.names[int(t)] for t in torch.unique(tl).tolist()]
            if self.training:
                embs = self.clf.class_embeddings_for(tasks, cache=False)
            else:
                missing = [t for t in tasks if t not in self._eval_emb]
                if missing:
                    self._eval_emb.update(self.clf.class_embeddings_for(missing, cache=False))
                embs = self._eval_emb
            if len(tasks) == 1:
                return self.clf.logits(feats, tasks[0], embs[tasks[0]])
            out = feats.new_zeros((x.shape[0], self.clf.specs[tasks[0]].n_classes))
            for t in tasks:
                mask = tl == self.names.index(t)
                out[mask] = self.clf.logits(feats[mask], t, embs[t]).to(out.dtype)
            return out

        def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
            return self.forward(x, task_label)

    class RecalibrateNorms(SupervisedPlugin):
        """Re-estimate batch-norm statistics after each experience over its data (with replay), as medtui does."""

        def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
            norms = [m for m in strategy.model.clf.clip.visual.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            momenta = [m.momentum for m in norms]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None
            strategy.model.train()
            with torch.no_grad(), precision():
                for mb in strategy.dataloader:
                    x = mb[0].to(strategy.device)
                    strategy.model.clf.encode_images(strategy.model.clf.prepare(x) if x.dtype == torch.uint8 else x)
            for m, mo in zip(norms, momenta):
                m.momentum = mo

    t0, c0 = time.perf_counter(), time.process_time()
    reg = TaskRegistry(cfg.data_dir)
    datas = [reg.load(t, max_train=cfg.max_train, max_test=cfg.max_test, seed=cfg.seed) for t in cfg.tasks]
    engine_run.seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    clf = ClipClassifier(load_clip(cfg.model, cfg.pretrained, device), [d.spec for d in datas], cfg.tune).to(device)
    model = ClipTasks(clf, list(cfg.tasks))

    def dataset(split: Any) -> Any:
        x = torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2)
        # grey tasks as three channels, so replay batches mixing tasks collate (medtui expands per task group)
        x = (x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x).contiguous()
        ds = torch.utils.data.TensorDataset(x, torch.from_numpy(split.labels.astype(np.int64)))
        ds.targets = split.labels.astype(np.int64).tolist()
        if setup == "tuned":
            return as_classification_dataset(ds)
        per_sample = lambda img: clf.prepare(img[None])[0]  # noqa: E731  (float, resized, normalised, per image)
        return as_classification_dataset(ds, transform_groups=TransformGroups({"train": per_sample, "eval": per_sample}))

    bm = task_incremental_benchmark(benchmark_from_datasets(
        train=[dataset(d.splits["train"]) for d in datas], test=[dataset(d.splits["test"]) for d in datas]))
    n_train = [len(d.splits["train"]) for d in datas]
    opt = torch.optim.AdamW(clf.trainable_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            fused=True if adamw == "fused" else None)
    steps = len(epoch_batches(n_train[0], cfg.batch_size, np.random.default_rng(0))) * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_lr(s, steps, int(cfg.warmup * steps)))
    plugins: list[Any] = [LRSchedulerPlugin(sched, reset_scheduler=True, reset_lr=True, step_granularity="iteration")]
    if cfg.recalibrate_bn:
        plugins.append(RecalibrateNorms())
    if cfg.buffer_size:
        plugins.append(ReplayPlugin(mem_size=cfg.buffer_size))
    if setup == "tuned":
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    else:
        evaluator = EvaluationPlugin(accuracy_metrics(epoch=True, experience=True, stream=True),
                                     loss_metrics(epoch=True, experience=True, stream=True),
                                     loggers=[TextLogger(open(os.devnull, "w"))])
    class FreshOptimizerNaive(Naive):
        """Naive with a fresh optimizer state per experience, as medtui has per stage."""

        def make_optimizer(self, reset_optimizer_state: bool = False, **kwargs: Any) -> None:
            super().make_optimizer(reset_optimizer_state=True, **kwargs)

    strategy = FreshOptimizerNaive(model=model, optimizer=opt, criterion=torch.nn.CrossEntropyLoss(),
                                   train_mb_size=cfg.batch_size, train_epochs=cfg.epochs, eval_mb_size=cfg.eval_batch_size,
                                   device=device, plugins=plugins, evaluator=evaluator)
    m = np.full((len(cfg.tasks) + 1, len(cfg.tasks)), np.nan)
    t_train = t_eval = 0.0

    def evaluate(row: int) -> None:
        nonlocal t_eval
        t = time.perf_counter()
        res = strategy.eval(bm.test_stream)
        t_eval += time.perf_counter() - t
        for j in range(len(cfg.tasks)):
            m[row, j] = res[f"Top1_Acc_Exp/eval_phase/test_stream/Task{j:03d}/Exp{j:03d}"]

    evaluate(0)
    for i, exp in enumerate(bm.train_stream, start=1):
        torch.manual_seed(cfg.seed * 1_000_003 + i)
        t = time.perf_counter()
        strategy.train(exp)
        t_train += time.perf_counter() - t
        evaluate(i)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return Result(m, total, t_train, t_eval, nominal_images(cfg, n_train), cpu, processed=model.processed)


# ------------------------------------------------------------------------------------ report
def fmt_matrix(ma: np.ndarray, mb: np.ndarray, tasks: tuple[str, ...]) -> list[str]:
    """Two accuracy matrices (in %) side by side, rows = evaluation points."""
    short = [t.removeprefix("synth-")[:7] for t in tasks]
    head = " ".join(f"{s:>7}" for s in short)
    lines = [f"{'':16}  {'medtui':^{8 * len(tasks)}}   {'avalanche':^{8 * len(tasks)}}", f"{'':16}  {head}    {head}"]
    labels = ["zero-shot"] + [f"after {s}" for s in short]
    for i, label in enumerate(labels):
        a = " ".join(f"{100 * v:7.1f}" for v in ma[i])
        b = " ".join(f"{100 * v:7.1f}" for v in mb[i])
        lines.append(f"{label:16}  {a}    {b}")
    return lines


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def metric_line(name: str, a: list[float | None], b: list[float | None]) -> str:
    """'name  medtui mean ± sd   avalanche mean ± sd' in points."""
    def cell(vs: list[float | None]) -> str:
        vs = [100 * v for v in vs if v is not None]
        if not vs:
            return f"{'-':>13}"
        m, sd = mean_sd(vs)
        return f"{m:6.1f} ± {sd:4.1f}"
    return f"  {name:<11} {cell(a)}    {cell(b)}"


def report(title: str, cfg: RunConfig, ours: list[Result], theirs: list[Result]) -> tuple[float, float, float, float, bool]:
    """Print one strategy's comparison; returns (medtui, avalanche) wall s, (medtui, avalanche) CPU s, agreement."""
    n = len(ours)
    print(f"\n== {title}: {', '.join(cfg.tasks)} · {cfg.epochs} epochs · batch {cfg.batch_size} · "
          f"lr {cfg.lr:g} · buffer {cfg.buffer_size} · {n} seed(s)")
    print(f"{'':22}{'medtui':>10}{'avalanche':>12}{'medtui/avalanche':>19}")
    rows = [("total s", "total"), ("training s", "train"), ("evaluation s", "eval"), ("total CPU s", "cpu")]
    sums = {}
    for label, key in rows:
        a, b = sum(getattr(r, key) for r in ours), sum(getattr(r, key) for r in theirs)
        sums[key] = (a, b)
        print(f"  {label:<20}{a:10.2f}{b:12.2f}{a / b:19.2f}")
    ia = sum(r.train_images for r in ours) / max(sums["train"][0], 1e-9)
    ib = sum(r.train_images for r in theirs) / max(sums["train"][1], 1e-9)
    print(f"  {'training img/s':<20}{ia:10.0f}{ib:12.0f}{ia / ib:19.2f}")
    pa, pb = sum(r.processed for r in ours), sum(r.processed for r in theirs)
    if pa != pb:  # replay: the tools draw the buffer differently, so the work per stage differs
        print(f"  {'images processed':<20}{pa:10d}{pb:12d}{pa / max(pb, 1):19.2f}")
        qa, qb = pa / max(sums["train"][0], 1e-9), pb / max(sums["train"][1], 1e-9)
        print(f"  {'processed img/s':<20}{qa:10.0f}{qb:12.0f}{qa / qb:19.2f}")
    print(f"  speedup (avalanche time / medtui time): total {sums['total'][1] / sums['total'][0]:.2f}, "
          f"training {sums['train'][1] / sums['train'][0]:.2f}, evaluation {sums['eval'][1] / sums['eval'][0]:.2f}, "
          f"CPU time {sums['cpu'][1] / sums['cpu'][0]:.2f}")
    print("accuracy (%, mean over seeds):")
    for line in fmt_matrix(np.mean([r.matrix for r in ours], 0), np.mean([r.matrix for r in theirs], 0), cfg.tasks):
        print("  " + line)
    print(f"  {'metric':<11} {'medtui':^13}    {'avalanche':^13}   (points, mean ± sd over seeds)")
    for k in ("last", "bwt", "forgetting", "la"):
        print(metric_line(k, [r.metrics.get(k) for r in ours], [r.metrics.get(k) for r in theirs]))
    la = [r.metrics["last"] for r in ours]
    lb = [r.metrics["last"] for r in theirs]
    (ma, sa), (mb, sb) = mean_sd(la), mean_sd(lb)
    # two standard errors of the difference of the means, but never finer than one test image per task
    floor = 1.0 / max(1, cfg.max_test or 1)
    tol = max(2 * math.sqrt(sa**2 / n + sb**2 / n), floor) if n > 1 else float("nan")
    agrees = n > 1 and abs(ma - mb) <= tol
    print(f"  last: medtui − avalanche = {100 * (ma - mb):+.2f} points; seed noise ±{100 * tol:.2f} "
          f"(2 SE over {n} seeds, at least one test image)"
          f" -> {'agree' if agrees else ('not judged: one seed' if n == 1 else 'DIFFER')}")
    return sums["total"][0], sums["total"][1], sums["cpu"][0], sums["cpu"][1], agrees


def find_data_dir(given: str | None) -> str | None:
    """``--data-dir``, ``$MEDTUI_DATA_DIR``, or the shared test data beside the repository."""
    if given:
        return given
    if os.environ.get("MEDTUI_DATA_DIR"):
        return os.environ["MEDTUI_DATA_DIR"]
    shared = REPO.parent / "shared" / "data" / "medmnist"
    return str(shared) if shared.is_dir() else None


def main() -> None:
    """Run both tools over every sequence, strategy and seed, and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3, help="seeds per tool and strategy (accuracy noise needs >= 2)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--buffer-size", type=int, default=200)
    ap.add_argument("--max-train", type=int, default=600, help="training images per task")
    ap.add_argument("--max-test", type=int, default=200, help="test images per task")
    ap.add_argument("--data-dir", default=None, help="folder with pneumoniamnist.npz and breastmnist.npz")
    ap.add_argument("--no-medmnist", action="store_true", help="synthetic tasks only")
    ap.add_argument("--avalanche-setup", choices=("tuned", "documented"), default="tuned",
                    help="tuned: Avalanche at its fastest (default); documented: as in its examples")
    ap.add_argument("--avalanche-adamw", choices=("default", "fused"), default="default",
                    help="default: torch.optim.AdamW(params, lr) as Avalanche's examples make it (on the CPU the "
                         "for-loop kernel); fused: the fused kernel medtui uses, to separate kernel and loop")
    native = cpu_has_native_bf16()
    ap.add_argument("--medtui-amp", choices=("auto", "bf16"), default="bf16" if native else "auto",
                    help="medtui's precision: bf16 = `medtui run --amp bf16` (the default on a CPU with bf16 "
                         "instructions), auto = its default (full precision on the CPU)")
    ap.add_argument("--avalanche-amp", choices=("off", "bf16"), default="off",
                    help="off: full precision, as Avalanche's strategies train; bf16: medtui's CPU autocast lent to "
                         "Avalanche's model, to separate what the precision buys from what the loop does")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("MEDTUI_THREADS", "1")),
                    help="CPU threads for both tools (default $MEDTUI_THREADS or 1: fair on a shared machine)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    warnings.showwarning = lambda *a, **k: None  # Avalanche's deprecation notices re-enable themselves per call
    try:
        import avalanche
    except ImportError:
        print('Avalanche is not installed: pip install -e ".[peers]"', file=sys.stderr)
        raise SystemExit(2)
    os.environ["MEDTUI_THREADS"] = str(args.threads)
    engine_run.pick_device("cpu")  # applies $MEDTUI_THREADS like a run would, for both tools
    data_dir = find_data_dir(args.data_dir)
    reg = TaskRegistry(data_dir)
    sequences = [("synthetic", SYNTHETIC)]
    if not args.no_medmnist:
        if all(reg.available(reg.get(t)) for t in MEDMNIST):
            sequences.append(("medmnist", MEDMNIST))
        else:
            print("MedMNIST pair not found (pass --data-dir): synthetic tasks only")
    print(f"torch {torch.__version__}, avalanche {avalanche.__version__} ({args.avalanche_setup} setup), "
          f"{torch.get_num_threads()} CPU thread(s); model medtui-tiny (random init), tune full; "
          f"AdamW kernel: medtui fused, avalanche {'fused' if args.avalanche_adamw == 'fused' else 'default (for-loop)'}; "
          f"precision: medtui {'bf16 autocast' if args.medtui_amp == 'bf16' else 'full (amp auto)'}, "
          f"avalanche {'bf16 autocast' if args.avalanche_amp == 'bf16' else 'full'} "
          f"(CPU bf16 instructions: {'yes' if native else 'no'})")
    grand = [0.0, 0.0, 0.0, 0.0]
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up (first-call allocations, lazy imports, tokenizer), not timed
        warm = resolve(RunConfig(tasks=SYNTHETIC[:1], epochs=1, batch_size=args.batch_size, device="cpu", max_train=64,
                                 max_test=32, keep_checkpoints=0, buffer_size=16, amp=args.medtui_amp))
        run_medtui(warm, Path(tmp) / "warm.db", [64])
        run_avalanche(warm, args.avalanche_setup, args.avalanche_adamw, args.avalanche_amp)
        for seq_name, tasks in sequences:
            base = resolve(RunConfig(tasks=tasks, epochs=args.epochs, batch_size=args.batch_size, device="cpu",
                                     max_train=args.max_train, max_test=args.max_test, data_dir=data_dir,
                                     keep_checkpoints=0, amp=args.medtui_amp))
            n_train = [len(reg.load(t, max_train=base.max_train, seed=base.seed).splits["train"]) for t in tasks]
            for strat, buf in (("naive", 0), ("replay", args.buffer_size)):
                ours: list[Result] = []
                theirs: list[Result] = []
                for seed in range(args.seeds):
                    cfg = replace(base, seed=seed, buffer_size=buf, name=f"{strat} {seq_name} s{seed}")
                    order = [0, 1] if seed % 2 == 0 else [1, 0]  # alternate who goes first
                    for who in order:
                        if who == 0:
                            r = run_medtui(cfg, Path(tmp) / "bench.db", n_train)
                            ours.append(r)
                        else:
                            r = run_avalanche(cfg, args.avalanche_setup, args.avalanche_adamw, args.avalanche_amp)
                            theirs.append(r)
                        r.metrics = compute_metrics(r.matrix.tolist(), "continual", len(tasks))
                    print(f"  [{seq_name} {strat} seed {seed}] medtui {ours[-1].total:.1f} s, "
                          f"avalanche {theirs[-1].total:.1f} s", flush=True)
                *secs, ok = report(f"{strat} · {seq_name}", replace(base, buffer_size=buf), ours, theirs)
                grand = [g + x for g, x in zip(grand, secs)]
                verdicts.append(ok)
    print(f"\nend to end, every sequence, naive + replay: medtui {grand[0]:.1f} s, avalanche {grand[1]:.1f} s "
          f"(CPU time {grand[2]:.1f} s vs {grand[3]:.1f} s: ratio {grand[3] / grand[2]:.2f}); "
          f"accuracy agrees within seed noise in {sum(verdicts)}/{len(verdicts)} comparisons")
    print(f"speedup medtui vs avalanche: {grand[1] / grand[0]:.2f}")


if __name__ == "__main__":
    main()
