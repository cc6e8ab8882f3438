"""Test-only workload entry points that each break the workload contract in one way, as a new
user's first workload does: ``tests.plugins.broken_workloads:<name>``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from autoopt import Split, Workload
from autoopt.workloads import top1_accuracy


class TupleModel(nn.Module):
    """Returns (logits, hidden), as many research models do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.fc(x), x


class ModelOutputModel(nn.Module):
    """Returns a transformers ``SequenceClassifierOutput``, as a bare Hugging Face model does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        return SequenceClassifierOutput(logits=self.fc(x))


def _data(n: int, seed: int) -> Split:
    rng = np.random.default_rng(seed)
    return Split((rng.standard_normal((n, 8)).astype(np.float32),), rng.integers(0, 3, n))


def _workload(model: nn.Module, **splits: Split) -> Workload:
    torch.manual_seed(0)
    parts = {"train": _data(40, 0), "calibration": _data(10, 1), "evaluation": _data(20, 2)}
    parts.update(splits)
    return Workload(name="broken", model=model.eval(), metric=top1_accuracy, **parts)


def healthy() -> Workload:
    return _workload(nn.Linear(8, 3))


def returns_tuple() -> Workload:
    return _workload(TupleModel())


def returns_model_output() -> Workload:
    return _workload(ModelOutputModel())


def overlapping_splits() -> Workload:
    train = _data(40, 0)
    return _workload(nn.Linear(8, 3), train=train, evaluation=train.take(15))


def torch_splits() -> Workload:
    split = _data(40, 0)
    return _workload(
        nn.Linear(8, 3), train=Split((torch.from_numpy(split.inputs[0]),), split.targets)
    )


def inputs_do_not_run() -> Workload:
    wrong = Split((np.zeros((20, 5), np.float32),), np.zeros(20, np.int64))
    return _workload(nn.Linear(8, 3), evaluation=wrong)
