"""Task data as uint8 tensors, decoded once and placed on the training device when they fit.

Images stay ``uint8`` (4x smaller than float) until a batch is gathered; the
classifier converts, resizes and normalises batches on the device.

On CUDA, splits go to the device in column order while they fit a data budget taken
from the memory left free *after* the model is built (so the model and its activations
are never crowded out); the rest stay in pinned host memory. Batches of a host split are
gathered into one of two pinned staging buffers (a plain ``index_select`` would return
pageable memory, and its copy would block) and copied on a side stream, which the
compute stream waits for: the copy of the next batch overlaps the current step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from medtui.data.base import Split, TaskData, TaskSpec

#: Share of the free device memory (measured after the model is built) that task data may take.
DEVICE_SHARE = 0.25


@dataclass
class _Staging:
    """Pinned host buffers used in turn, with the event that says when each one's copy is done."""

    images: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    done: list[Any] = field(default_factory=list)
    stream: Any = None
    turn: int = 0


@dataclass
class SplitTensors:
    """One split as tensors: images ``N x C x H x W`` uint8, labels ``N`` int64."""

    images: torch.Tensor
    labels: torch.Tensor
    labels_np: np.ndarray
    _staging: _Staging | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return int(self.labels_np.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes the split's tensors take."""
        return self.images.numel() * self.images.element_size() + self.labels.numel() * self.labels.element_size()

    def gather(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``idx``, on ``device``."""
        i = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64))
        if self.images.device == device:
            i = i.to(device)
            return self.images.index_select(0, i), self.labels.index_select(0, i)
        if device.type == "cuda" and self.images.is_pinned():
            return self._gather_staged(i, device)
        x, y = self.images.index_select(0, i), self.labels.index_select(0, i)
        return x.to(device), y.to(device)

    def _gather_staged(self, i: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Gather into a pinned staging buffer and copy it on a side stream (CUDA only)."""
        st = self._staging
        if st is None:
            st = self._staging = _Staging(stream=torch.cuda.Stream(device))
        k = int(i.shape[0])
        if len(st.images) < 2:
            slot = len(st.images)
            st.images.append(torch.empty(0, dtype=self.images.dtype))
            st.labels.append(torch.empty(0, dtype=self.labels.dtype))
            st.done.append(None)
        else:
            slot = st.turn % 2
        st.turn += 1
        if st.images[slot].shape[0] < k:  # grown once per size class; freed buffers are recycled by torch's host cache
            st.images[slot] = torch.empty((k, *self.images.shape[1:]), dtype=self.images.dtype).pin_memory()
            st.labels[slot] = torch.empty((k,), dtype=self.labels.dtype).pin_memory()
            st.done[slot] = None
        if st.done[slot] is not None:
            st.done[slot].synchronize()  # the copy out of this buffer (two batches ago) must be finished
        bx, by = st.images[slot][:k], st.labels[slot][:k]
        torch.index_select(self.images, 0, i, out=bx)
        torch.index_select(self.labels, 0, i, out=by)
        compute = torch.cuda.current_stream(device)
        with torch.cuda.stream(st.stream):
            x = bx.to(device, non_blocking=True)
            y = by.to(device, non_blocking=True)
            ev = torch.cuda.Event()
            ev.record(st.stream)
        st.done[slot] = ev
        compute.wait_event(ev)
        x.record_stream(compute)
        y.record_stream(compute)
        return x, y


@dataclass
class TaskTensors:
    """A loaded task's spec with its train and test splits as tensors."""

    spec: TaskSpec
    train: SplitTensors
    test: SplitTensors
    fingerprint: str


def _host_tensors(split: Split) -> SplitTensors:
    x = torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(split.labels.astype(np.int64))
    return SplitTensors(images=x, labels=y, labels_np=split.labels)


def _place(s: SplitTensors, device: torch.device, budget: list[int]) -> SplitTensors:
    """Move a host split onto ``device`` if it fits what is left of ``budget`` (bytes), else pin it."""
    if device.type != "cuda":
        return s
    if s.nbytes <= budget[0]:
        budget[0] -= s.nbytes
        return SplitTensors(s.images.to(device), s.labels.to(device), s.labels_np)
    return SplitTensors(s.images.pin_memory(), s.labels.pin_memory(), s.labels_np)


def device_data_budget(device: torch.device, share: float = DEVICE_SHARE) -> int:
    """Bytes of task data to keep on ``device``: ``share`` of its free memory now (build the model first)."""
    if device.type != "cuda":
        return 0
    free, _ = torch.cuda.mem_get_info(device)
    return int(share * free)


def to_task_tensors(data: TaskData, device: torch.device, budget: list[int] | None = None) -> TaskTensors:
    """Convert a loaded task (numpy) into tensors on or near ``device``.

    ``budget`` is a one-element list of bytes still allowed on the device, spent as splits
    are placed; None takes :func:`device_data_budget` for this task alone.
    """
    budget = budget if budget is not None else [device_data_budget(device)]
    return TaskTensors(
        spec=data.spec,
        train=_place(_host_tensors(data.splits["train"]), device, budget),
        test=_place(_host_tensors(data.splits["test"]), device, budget),
        fingerprint=data.fingerprint(),
    )


def place_tasks(datas: Sequence[TaskData], device: torch.device, share: float = DEVICE_SHARE) -> list[TaskTensors]:
    """All column tasks as tensors, sharing one device budget (call after the model is on ``device``)."""
    budget = [device_data_budget(device, share)]
    return [to_task_tensors(d, device, budget) for d in datas]
