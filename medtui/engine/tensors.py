"""Task data as uint8 tensors, decoded once and placed on the training device when they fit.

Images stay ``uint8`` (4x smaller than float) until a batch is gathered; the
classifier converts, resizes and normalises batches on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medtui.data.base import Split, TaskData, TaskSpec

#: Keep a task's images on the GPU when they take less than this share of free memory.
DEVICE_SHARE = 0.25


@dataclass
class SplitTensors:
    """One split as tensors: images ``N x C x H x W`` uint8, labels ``N`` int64."""

    images: torch.Tensor
    labels: torch.Tensor
    labels_np: np.ndarray

    def __len__(self) -> int:
        return int(self.labels_np.shape[0])

    def gather(self, idx: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``idx``, on ``device``."""
        i = torch.from_numpy(np.ascontiguousarray(idx)).to(self.images.device)
        x, y = self.images.index_select(0, i), self.labels.index_select(0, i)
        if x.device != device:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return x, y


@dataclass
class TaskTensors:
    """A loaded task's spec with its train and test splits as tensors."""

    spec: TaskSpec
    train: SplitTensors
    test: SplitTensors
    fingerprint: str


def _to_tensors(split: Split, device: torch.device) -> SplitTensors:
    x = torch.from_numpy(np.ascontiguousarray(split.images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(split.labels.astype(np.int64))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if x.numel() < DEVICE_SHARE * free:
            x, y = x.to(device), y.to(device)
        else:
            x, y = x.pin_memory(), y.pin_memory()
    return SplitTensors(images=x, labels=y, labels_np=split.labels)


def to_task_tensors(data: TaskData, device: torch.device) -> TaskTensors:
    """Convert a loaded task (numpy) into tensors on or near ``device``."""
    return TaskTensors(
        spec=data.spec,
        train=_to_tensors(data.splits["train"], device),
        test=_to_tensors(data.splits["test"], device),
        fingerprint=data.fingerprint(),
    )
