"""A trial left RUNNING by a dead controller is re-queued as what it was."""

from __future__ import annotations

import socket
from pathlib import Path

import optuna

import autoopt
from autoopt.search.ledger import RunLedger
from autoopt.study import schema as R
from autoopt.study.recorder import TrialRecorder


def test_requeued_trial_keeps_its_seed_and_fixed_values(repo: Path, tmp_path: Path) -> None:
    exp = autoopt.validate(repo / "experiments/digits_cnn.yaml")
    url = f"sqlite:///{tmp_path}/study.db"
    study = optuna.create_study(study_name="s", storage=url, directions=exp.directions)
    trial = study.ask()
    dead = f"{socket.gethostname()}:999999999:abcdef"  # no such pid: its controller is gone
    attrs = {
        "controller": dead,
        R.ATTR_SEED: "standard",
        R.ATTR_FIXED: {"quantization.dynamic_int8.per_channel": False},
        R.ATTR_RECOMBINED: {"model_from": 3, "settings_from": 1},
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    ledger = RunLedger(exp, exp.targets[0], url, "s", owner="me")
    recorder = TrialRecorder(study, exp.constraint, exp.objectives)
    assert ledger.recover_stale(study, recorder) == 1
    (waiting,) = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert waiting.user_attrs == {
        R.ATTR_REQUEUED_FROM: trial.number,
        **{k: v for k, v in attrs.items() if k != "controller"},
    }
