"""A recipe that failed by itself is not rebuilt (real Ray, a real SQLite study): a later
proposal of it is told the earlier failure, PRUNED with the constraint violated so that TPE
steers away (tests/unit/test_failed_repeats.py measures that)."""

from __future__ import annotations

from pathlib import Path

import autoopt


def test_a_failed_recipe_proposed_again_is_told_its_failure_not_rebuilt(
    ray_session, make_experiment, tmp_path: Path
) -> None:
    space = """
    parameters:
      pruning.method: [sabotage]
      pruning.sabotage.mode: [raise]
      precision.method: [fp32]
      backend.method: [torch_eager]
    """
    exp = make_experiment(
        space, n_trials=2, workers=1, extra="plugins: [tests.plugins.broken_techniques]\n"
    )
    first = autoopt.run(exp)
    assert first.failed == 1
    # The space has one candidate, which failed above: asked again, it is told that failure
    # (repeats take no slot of the budget, sampler.distinct, so the run asks until the
    # sampler has nothing new to propose), and nothing is built.
    second = autoopt.run(exp, n_trials=2)
    assert second.duplicates >= 2 and second.cache_builds == 0 and second.completed == 0
    study = autoopt.load_study("exp", f"sqlite:///{tmp_path}/study.db")
    failed = study.trials[1]
    assert failed.state == "FAIL" and "always fails" in failed.failure_reason
    for repeat in study.trials[2:]:
        assert repeat.state == "PRUNED" and repeat.status == "failed", repeat
        assert repeat.duplicate_of == failed.number and repeat.stages == []
        assert (repeat.failure_stage, repeat.failure_reason) == (
            failed.failure_stage,
            failed.failure_reason,
        )
        assert repeat.recipe == failed.recipe and not repeat.feasible
        assert repeat.constraint is not None and repeat.constraint > 0
