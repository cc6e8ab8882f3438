"""Hardware targets on a real multi-node Ray cluster: each trial runs on its target's node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: [0.25, 0.5]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""
TARGETS = """
targets:
  - {name: a, resources: {pool_a: 1}}
  - {name: b, resources: {pool_b: 1}}
"""


def test_two_targets_run_on_their_own_nodes_and_unmatched_target_is_reported(
    make_experiment, tmp_path: Path, repo: Path
) -> None:
    exp = make_experiment(SPACE, n_trials=3, workers=1, extra=TARGETS, plain=True)
    storage = f"sqlite:///{tmp_path}/study.db"
    proc = subprocess.run(
        [sys.executable, str(repo / "tests/integration/cluster_sweep.py"), str(exp), storage],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    result = json.loads(lines[0].removeprefix("RESULT "))
    nodes = result["nodes"]
    assert set(result["trials"]) == {"a", "b"}  # a study per target: exp@a, exp@b
    for target, trials in result["trials"].items():
        assert len(trials) == 3
        assert all(t["state"] == "COMPLETE" for t in trials), trials
        assert {t["node"] for t in trials} == {nodes[target]}, (target, trials, nodes)
        assert {t["target"] for t in trials} == {target}
    error = result["gpu_error"]
    assert error and "targets[gpu]" in error and "GPU" in error and "pool_a" in error
