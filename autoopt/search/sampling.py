"""From a declared search space to Optuna suggestions, and from a sampler name to a sampler."""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from autoopt.config import SamplerConfig, SearchSpace
from autoopt.config._space import encode_choice


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Sample every active parameter of ``space`` in declaration order.

    Numeric choices stay numeric ranges where declared as ranges, so TPE keeps their order;
    only genuinely categorical choices are categorical.
    """
    sampled: dict[str, Any] = {}
    for name, spec in space.parameters.items():
        if spec.kind == "fixed" or not space.is_active(name, sampled):
            continue
        if spec.kind == "categorical":
            value = trial.suggest_categorical(name, [encode_choice(c) for c in spec.choices or []])
        elif spec.kind == "int":
            value = trial.suggest_int(
                name,
                int(spec.low),
                int(spec.high),
                step=int(spec.step or 1),
                log=spec.log,  # type: ignore[arg-type]
            )
        else:
            value = trial.suggest_float(
                name,
                float(spec.low),
                float(spec.high),
                step=spec.step,
                log=spec.log,  # type: ignore[arg-type]
            )
        sampled[name] = value
    return sampled


class AskTellGridSampler(optuna.samplers.GridSampler):
    """GridSampler calls ``study.stop()`` when the grid is done, which only works inside
    ``optimize()``; the ask/tell controller checks ``is_exhausted`` itself instead."""

    def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
        return None

    def all_started(self, study: optuna.Study) -> bool:
        """Whether every grid point has a trial, finished or running: asked for more, the
        sampler would only re-propose points in flight."""
        started = {
            t.system_attrs["grid_id"]
            for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
            if "grid_id" in t.system_attrs
            and (t.state.is_finished() or t.state == optuna.trial.TrialState.RUNNING)
        }
        return len(started) >= len(self._all_grids)


#: TPE's random start-up: sampled trials before it models anything.
TPE_STARTUP = 8


def make_sampler(
    config: SamplerConfig, space: SearchSpace, n_trials: int | None, queued: int = 0
) -> optuna.samplers.BaseSampler:
    """The sampler ``config`` names. ``queued`` trials (the baseline, seed candidates, derived
    starting points) come before TPE's random start-up rather than in its place: a handful
    of standard recipes of one model says little about the rest of a space (on the search
    benchmark, counting them as start-up cost TPE 3 points of hypervolume at 25% of the
    evaluations, see results/search/benchmark.md)."""
    seed = config.seed
    if config.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if config.name == "nsga2":
        # A generation per ~quarter of the budget, so small sweeps still evolve.
        population = max(4, min(50, (n_trials or 40) // 4))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    if config.name == "grid":
        grid = {
            name: spec.grid_values()
            for name, spec in space.parameters.items()
            if spec.kind != "fixed"
        }
        return AskTellGridSampler(grid, seed=seed)
    # multivariate + group: TPE models the conditional sub-spaces (one per method choice)
    # jointly instead of sampling each parameter independently. constant_liar: trials still
    # running count as bad ones while TPE samples, so the proposals of several workers in
    # flight spread out instead of collapsing onto the current favourite (see
    # results/search/benchmark.md).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            multivariate=True,
            group=True,
            n_startup_trials=TPE_STARTUP + queued,
            constant_liar=True,
        )
