"""Small models for the self-test's tests: a stack of repeated blocks that receive a batched
tensor, a constant tensor and a flag, as transformer layers do. In a module of their own so
that the stage cache can pickle them (by import path)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from autoopt.workloads import Split, Workload


class Inner(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class Block(nn.Module):
    """Receives a batched tensor, a constant tensor and a flag, as transformer layers do."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = Inner()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor, scale: torch.Tensor, *, double: bool = False) -> tuple:
        y = self.act(self.inner(x)) * scale
        return (y * 2 if double else y, None)


class Stack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Sequential(nn.Identity(), nn.Identity())  # a container, not a block
        self.layers = nn.ModuleList([Block() for _ in range(3)])
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 4), requires_grad=False)
        self.drops = nn.ModuleList([nn.Dropout() for _ in range(5)])  # repeats, no Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x, _ = layer(x, self.scale, double=True)
        return x


class Parallel(Stack):
    """Blocks side by side, each fed the same input: not a chain."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(layer(x, self.scale)[0] for layer in self.layers)


def stack_workload(model: nn.Module | None = None) -> Workload:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((200, 4)).astype(np.float32)
    split = Split((x,))
    return Workload(
        name="stack",
        model=(model or Stack()).eval(),
        train=split,
        calibration=split,
        evaluation=split,
        metric=lambda o, s, t: {"cosine": 1.0},
    )


class ResidualBlock(nn.Module):
    """LN → Linear + residual → LN → Linear → softmax + residual: the part of a BERT layer
    where torch 2.13's Inductor mis-plans memory for int8 under max-autotune
    (results/inductor_int8_autotune)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln0, self.ln1 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln0(x)
        h = self.ln1(self.fc1(h) + h)  # an int8 Linear that adds into its residual in place
        return self.fc2(h).softmax(-1) + h


class ResidualChain(nn.Module):
    def __init__(self, d: int = 64, n: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList([ResidualBlock(d) for _ in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.mean(1)


def residual_workload(d: int = 64, tokens: int = 32) -> Workload:
    torch.manual_seed(0)
    x = np.random.default_rng(0).standard_normal((96, tokens, d)).astype(np.float32)
    split = Split((x,))
    return Workload(
        name="residual",
        model=ResidualChain(d).eval(),
        train=split,
        calibration=split,
        evaluation=split,
        metric=lambda o, s, t: {"cosine": 1.0},
        output_kind="embedding",
    )
