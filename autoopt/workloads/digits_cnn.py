"""Bundled workload: a small CNN on scikit-learn's 8x8 handwritten digits (real, offline data).

Splits are stratified and fixed by seed: 60% train (teacher training, distillation and
recovery), 10% calibration, 30% evaluation (never trained or calibrated on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from autoopt.workloads._base import Split, Workload, top1_accuracy

SEED = 0
TEACHER_VERSION = "v1"


class DigitsCNN(nn.Module):
    """conv(1→c1) → conv(c1→c2) → pool → fc(c2*16→hidden) → fc(hidden→10)."""

    def __init__(self, c1: int = 16, c2: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(c2 * 16, hidden)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(self.flatten(x))))


def splits() -> tuple[Split, Split, Split]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None, :, :]
    y = data.target.astype(np.int64)
    idx = np.arange(len(y))
    train_idx, rest = train_test_split(idx, train_size=0.6, random_state=SEED, stratify=y)
    calib_idx, eval_idx = train_test_split(
        rest, train_size=0.25, random_state=SEED, stratify=y[rest]
    )
    return tuple(Split((x[i],), y[i]) for i in (train_idx, calib_idx, eval_idx))  # type: ignore[return-value]


def train_classifier(model: nn.Module, split: Split, epochs: int, seed: int = SEED) -> nn.Module:
    """Plain supervised training (Adam, cross-entropy), deterministic for a given seed."""
    torch.manual_seed(seed)
    x = torch.from_numpy(split.inputs[0])
    y = torch.from_numpy(split.targets)  # type: ignore[arg-type]
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    return model.eval()


def _teacher(train: Split) -> DigitsCNN:
    from autoopt.workloads import asset_dir

    path = asset_dir("digits_cnn") / f"teacher-{TEACHER_VERSION}.pt"
    with FileLock(str(path) + ".lock"):
        model = DigitsCNN()
        if path.exists():
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval()
        # Trained once with a fixed seed; every process then loads the same weights.
        train_classifier(model, train, epochs=30)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
        return model


def make_student(options: Mapping[str, Any]) -> nn.Module:
    """A narrower DigitsCNN: every layer's width scaled by ``options['width']``."""
    width = float(options.get("width", 0.5))
    return DigitsCNN(
        c1=max(1, round(16 * width)),
        c2=max(1, round(32 * width)),
        hidden=max(1, round(64 * width)),
    )


def load() -> Workload:
    train, calibration, evaluation = splits()
    with torch.inference_mode(False):
        teacher = _teacher(train)
    return Workload(
        name="digits_cnn",
        model=teacher,
        train=train,
        calibration=calibration,
        evaluation=evaluation,
        metric=top1_accuracy,
        metric_name="accuracy",
        output_kind="logits",
        input_names=("image",),
        output_names=("logits",),
        make_student=make_student,
        description="sklearn digits (8x8, 1797 images), CNN teacher, top-1 accuracy",
        input_description=(
            "image: float32, shape (batch, 1, 8, 8): an 8x8 grey-level digit as scikit-learn's "
            "load_digits gives it (pixel values 0-16), divided by 16 so that values lie in "
            "[0, 1]; logits: float32 (batch, 10), one per digit 0-9"
        ),
    )
