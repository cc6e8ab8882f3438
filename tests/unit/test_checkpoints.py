"""Training in rungs continues checkpoints: the model continued to the end is the one trained
in one go, and a build killed mid-training resumes from its last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autoopt import hardware
from autoopt.artifacts import load_artifact
from autoopt.cache import StageCache
from autoopt.checkpoints import CHECKPOINT_KIND, checkpoint_points
from autoopt.measure import score
from autoopt.pipeline import build
from autoopt.plugins import get_backend
from autoopt.recipe import Recipe
from autoopt.resolve import make_step

RUNGS = (1 / 9, 1 / 3)


def _student(steps: int) -> Recipe:
    config = {"width": 0.5, "steps": steps, "lr": 0.003, "temperature": 4.0, "alpha": 0.7}
    return Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
        distillation=make_step("distillation.kd", config),
    )


def _pruned(steps: int) -> Recipe:
    config = {"amount": 0.5, "recovery_steps": steps, "recovery_lr": 0.001}
    return Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
        pruning=make_step("pruning.unstructured", config),
    )


def _qat(steps: int) -> Recipe:
    # Observers freeze at a third, batch norm at half: after the first rung and across the
    # second, so the continued run must carry the freeze schedule.
    config = {"steps": steps, "lr": 1e-4, "batch_size": 64, "calibration_samples": 64,
              "freeze_observers": 1 / 3, "freeze_batchnorm": 0.5}  # fmt: skip
    return Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_compile", {"freezing": True}),
        quantization=make_step("quantization.qat_int8", config),
    )


def _accuracy(workload, built) -> float:
    step = make_step("backend.torch_eager")
    runner = get_backend(step.key)().compile(load_artifact(built.path, "torch"), step.config, 1)
    return score(runner, workload)["accuracy"]


def _weights(built) -> dict[str, torch.Tensor]:
    return load_artifact(built.path, "torch").model.state_dict()


def _checkpoints(cache: StageCache) -> list[int]:
    return sorted(e.meta["steps"] for e in cache.entries() if e.meta["kind"] == CHECKPOINT_KIND)


@pytest.mark.parametrize(
    "recipe", [_student(450), _pruned(450), _qat(450)], ids=["distillation", "recovery", "qat"]
)
def test_rungs_continue_to_the_model_trained_in_one_go(
    workload, tmp_path: Path, recipe: Recipe
) -> None:
    torch.set_num_threads(1)
    here = hardware.current()
    one_go = build(recipe, workload, StageCache(tmp_path / "one"), here, tmp_path)
    cache = StageCache(tmp_path / "rungs")
    outputs, keys = [], []
    for share in (*RUNGS, 1.0):
        built = build(recipe, workload, cache, here, tmp_path, fidelity=share, rungs=RUNGS)
        event = built.events[0]
        assert not event.hit and event.steps == round(450 * share)
        outputs.append(built)
        keys.append(built.key)
    # Each rung went on from the previous rung's checkpoint (optimizer, schedule and all).
    assert [b.events[0].resumed_from for b in outputs] == [None, 50, 150]
    assert [b.fidelity for b in outputs] == [pytest.approx(1 / 9), pytest.approx(1 / 3), 1.0]
    # A rung's model is cached apart from the full one; the full one under the usual key.
    assert len(set(keys)) == 3 and keys[-1] == one_go.key
    final, reference = _weights(outputs[-1]), _weights(one_go)
    assert final.keys() == reference.keys()
    for name, tensor in reference.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    assert _accuracy(workload, outputs[-1]) == pytest.approx(
        _accuracy(workload, one_go), abs=0.005
    )
    # The stage is complete: its checkpoints are gone, its rung models stay.
    assert _checkpoints(cache) == []
    # Asked for a rung again, the build takes the fully trained model from the cache.
    again = build(recipe, workload, cache, here, tmp_path, fidelity=RUNGS[0], rungs=RUNGS)
    assert again.events[0].hit and again.fidelity == 1.0 and again.key == one_go.key


_CHILD = """
import sys, torch
from pathlib import Path
from autoopt import hardware
from autoopt.cache import StageCache
from autoopt.pipeline import build
from autoopt.resolve import make_step
from autoopt.recipe import Recipe
from autoopt.workloads import load_workload
torch.set_num_threads(1)
recipe = Recipe(precision=make_step("precision.fp32"), backend=make_step("backend.torch_eager"),
    distillation=make_step("distillation.kd", {"width": 0.5, "steps": int(sys.argv[2]),
    "lr": 0.003, "temperature": 4.0, "alpha": 0.7}))
build(recipe, load_workload("digits_cnn"), StageCache(sys.argv[1]), hardware.current(),
      Path(sys.argv[3]))
"""


def test_a_build_killed_mid_training_resumes_from_its_last_checkpoint(
    workload, tmp_path: Path
) -> None:
    steps = 2400
    cache = StageCache(tmp_path / "cache")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(cache.root), str(steps), str(tmp_path)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while not _checkpoints(cache) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL, "the build finished before it was killed"
    # The newest checkpoint survives (an older one too if the kill fell between the two).
    kept = _checkpoints(cache)
    assert kept and set(kept) <= set(checkpoint_points(steps))
    torch.set_num_threads(1)
    here = hardware.current()
    resumed = build(_student(steps), workload, cache, here, tmp_path)
    assert resumed.events[0].resumed_from == kept[-1] and resumed.events[0].steps == steps
    one_go = build(_student(steps), workload, StageCache(tmp_path / "one"), here, tmp_path)
    for name, tensor in _weights(one_go).items():
        torch.testing.assert_close(_weights(resumed)[name], tensor, rtol=1e-5, atol=1e-6)
