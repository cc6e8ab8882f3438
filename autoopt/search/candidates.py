"""What a run knows of each candidate, by recipe key: the trial that measured it, stopped it
early or saw it fail by itself (a later proposal of it is told that trial's outcome instead of
being built again), and the repeats held for a candidate still in flight."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from autoopt.recipe import Recipe
from autoopt.search.points import recipe_key
from autoopt.study import schema as S
from autoopt.study.records import TrialRecord, trial_record


@dataclass
class Candidates:
    measured: dict[str, TrialRecord] = field(default_factory=dict)
    #: Stopped early (a first slice below the floor, a rung): a repeat gets the same verdict.
    judged: dict[str, TrialRecord] = field(default_factory=dict)
    #: Failed by themselves (their build or their outputs): a repeat is told that failure,
    #: and none is drawn again at random.
    failed: dict[str, TrialRecord] = field(default_factory=dict)
    #: Repeats of a candidate still in flight, told when it is.
    held: dict[str, list[tuple[optuna.Trial, Recipe]]] = field(default_factory=dict)

    @classmethod
    def of(cls, study: optuna.Study) -> Candidates:
        """What the study's finished trials say; the first outcome of a candidate is the one
        repeats point to."""
        known = cls()
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        for t in study.get_trials(deepcopy=False, states=states):
            record = trial_record(t)
            if not record.recipe or record.is_repeat:
                continue
            key = recipe_key(record.recipe)
            if t.state == TrialState.COMPLETE:
                known.measured.setdefault(key, record)
            elif t.state == TrialState.PRUNED and record.status in S.JUDGED_EARLY:
                known.judged.setdefault(key, record)
            elif t.state == TrialState.FAIL and t.user_attrs.get(S.ATTR_FAILURE_OWN):
                known.failed.setdefault(key, record)
        return known

    def earlier(self, recipe: Recipe | dict[str, Any]) -> TrialRecord | None:
        """The trial whose outcome a new proposal of ``recipe`` is told, if any."""
        key = recipe_key(recipe)
        return self.measured.get(key) or self.judged.get(key) or self.failed.get(key)

    def keys(self) -> set[str]:
        """Every candidate measured, stopped early or failed by itself."""
        return set(self.measured) | set(self.judged) | set(self.failed)

    def hold(self, trial: optuna.Trial, recipe: Recipe) -> None:
        self.held.setdefault(recipe_key(recipe), []).append((trial, recipe))

    def take_held(self, recipe: Recipe | None = None) -> list[tuple[optuna.Trial, Recipe]]:
        """The repeats held for ``recipe`` (for every candidate without one), no longer held."""
        if recipe is not None:
            return self.held.pop(recipe_key(recipe), [])
        held, self.held = self.held, {}
        return [pair for pairs in held.values() for pair in pairs]
