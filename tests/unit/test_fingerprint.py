"""Cache keys see code: editing a technique's helper module or a model's ``forward``
invalidates exactly the stages that run it."""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from autoopt import fingerprint, hardware
from autoopt.cache import StageCache
from autoopt.pipeline import build
from autoopt.recipe import Recipe
from autoopt.resolve import make_step
from autoopt.workloads import Split, Workload, top1_accuracy

MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""
HELPER = """
def factor():
    return 1.0
"""
TECHNIQUE = """
import copy

import torch

from autoopt.artifacts import TorchArtifact
from autoopt.plugins import MethodConfig, Technique, register
from fpkg.helper import factor


class ScaleConfig(MethodConfig):
    pass


@register
class Scale(Technique[ScaleConfig]):
    key = "quantization.fp_scale"
    family = "quantization"
    Config = ScaleConfig

    def apply(self, artifact, config, ctx):
        model = copy.deepcopy(artifact.model)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(factor())
        return TorchArtifact(model)
"""
UNRELATED = "VALUE = 1\n"


@pytest.fixture()
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "src" / "fpkg"
    root.mkdir(parents=True)
    for name, text in {
        "__init__.py": "",
        "model.py": MODEL,
        "helper.py": HELPER,
        "technique.py": TECHNIQUE,
        "unrelated.py": UNRELATED,
    }.items():
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(root.parent))
    yield root
    for name in [m for m in sys.modules if m == "fpkg" or m.startswith("fpkg.")]:
        del sys.modules[name]
    _forget()


def _forget() -> None:
    """What a fresh worker process would see: no fingerprint remembered, modules re-read."""
    for cached in (
        fingerprint.code_fingerprint,
        fingerprint.module_closure,
        fingerprint._module_file,
    ):
        cached.cache_clear()
    importlib.invalidate_caches()


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))
    _forget()


def _workload() -> Workload:
    model_module = importlib.reload(importlib.import_module("fpkg.model"))
    x = np.random.default_rng(0).standard_normal((60, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    return Workload(
        name="fp",
        model=model_module.Net().eval(),
        train=Split((x[:20],), y[:20]),
        calibration=Split((x[20:40],), y[20:40]),
        evaluation=Split((x[40:],), y[40:]),
        metric=top1_accuracy,
    )


def _built(workload: Workload, cache: StageCache, tmp_path: Path) -> dict[str, bool]:
    importlib.reload(importlib.import_module("fpkg.helper"))
    importlib.reload(importlib.import_module("fpkg.technique"))
    recipe = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
        pruning=make_step("pruning.unstructured", {"amount": 0.5}),
        quantization=make_step("quantization.fp_scale"),
    )
    result = build(recipe, workload, cache, hardware.current(), tmp_path)
    return {e.stage: e.hit for e in result.events}


def test_code_fingerprint_follows_imported_modules_and_ignores_others(package: Path) -> None:
    importlib.import_module("fpkg.technique")
    from fpkg.technique import Scale

    before = fingerprint.code_fingerprint(Scale)
    _edit(package / "unrelated.py", "VALUE = 1", "VALUE = 2")
    assert fingerprint.code_fingerprint(Scale) == before
    _edit(package / "helper.py", "return 1.0", "return 0.5")
    assert fingerprint.code_fingerprint(Scale) != before


def test_editing_a_helper_rebuilds_its_stage_and_a_forward_rebuilds_everything(
    package: Path, tmp_path: Path
) -> None:
    cache = StageCache(tmp_path / "cache")
    workload = _workload()
    first = _built(workload, cache, tmp_path)
    assert first == {"pruning.unstructured": False, "quantization.fp_scale": False}
    assert _built(workload, cache, tmp_path) == {
        "pruning.unstructured": True,
        "quantization.fp_scale": True,
    }
    # The technique's helper changed: only the stage that runs it is built again.
    _edit(package / "helper.py", "return 1.0", "return 0.5")
    assert _built(workload, cache, tmp_path) == {
        "pruning.unstructured": True,
        "quantization.fp_scale": False,
    }
    # The model's forward changed (same weights): nothing computed on the old one is reused.
    _edit(package / "model.py", "torch.relu(self.fc1(x))", "torch.tanh(self.fc1(x))")
    edited = _workload()
    assert edited.version == workload.version  # the same weights and data
    assert edited.model_code != workload.model_code
    assert _built(edited, cache, tmp_path) == {
        "pruning.unstructured": False,
        "quantization.fp_scale": False,
    }
