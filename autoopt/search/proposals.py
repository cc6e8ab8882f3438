"""Where a run's candidates come from: the queue (baseline, seeds, derived starting points,
re-queued, recombined), then the sampler; each made into a recipe, refused early where this
host cannot build it, and turned into the task a worker runs."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from autoopt.artifacts import ArtifactKind
from autoopt.cache import resolve_root
from autoopt.config import Experiment, Target
from autoopt.errors import CandidateError, ConfigError
from autoopt.execution import TrialTask
from autoopt.recipe import Recipe
from autoopt.resolve import baseline_params, baseline_recipe, recipe_from_params
from autoopt.search import recombine
from autoopt.search.host import HostCheck
from autoopt.search.points import random_point, recipe_key
from autoopt.search.sampling import suggest
from autoopt.search.starting import Derivation, HostFacts, derive, teacher_depth
from autoopt.study import schema as S
from autoopt.study.recorder import TrialRecorder


@dataclass
class Asked:
    """A trial asked for, with the recipe made of its parameters."""

    trial: optuna.Trial
    recipe: Recipe

    @property
    def is_baseline(self) -> bool:
        return bool(self.trial.user_attrs.get(S.ATTR_BASELINE))


class Proposals:
    def __init__(
        self,
        exp: Experiment,
        target: Target,
        recorder: TrialRecorder,
        workload: Any,
        *,
        owner: str,
        run_id: str,
        ray_address: str | None,
        on_event: Callable[[dict[str, Any]], None],
    ) -> None:
        self.exp, self.target, self.recorder, self.workload = exp, target, recorder, workload
        self.owner, self.run_id, self.ray_address = owner, run_id, ray_address
        self.on_event = on_event
        self._seeds = {seed.name: seed for seed in exp.seed_candidates}
        #: What the target's self-test found (set once it has run).
        self.host = HostCheck()
        #: Draws of candidates not measured yet, when the sampler only repeats itself.
        self._rng = random.Random(f"{exp.sampler.seed}:{run_id}")

    @property
    def teacher_kind(self) -> ArtifactKind:
        """What the workload's candidates start from (its baseline follows)."""
        kind: ArtifactKind = self.workload.teacher_kind
        return kind

    def task(
        self,
        number: int,
        recipe: Recipe,
        *,
        floor: float | None = None,
        fidelity: float = 1.0,
        rungs: tuple[float, ...] = (),
    ) -> TrialTask:
        return TrialTask(
            trial_number=number,
            recipe=recipe.to_dict(),
            workload=self.exp.workload.name,
            workload_options=dict(self.exp.workload.options),
            cache_dir=resolve_root(self.exp.cache_dir),
            latency=self.exp.latency.model_dump(),
            verify=self.exp.verify.model_dump(),
            plugins=list(self.exp.plugins),
            seed=self.exp.sampler.seed or 0,
            sys_path=[os.getcwd(), *sys.path],
            build_threads=self.exp.execution.build_threads,
            device=self.target.device,
            accuracy_floor=floor,
            fidelity=fidelity,
            rungs=rungs,
        )

    def ask(self, study: optuna.Study) -> tuple[optuna.Trial, Recipe | None, str]:
        """The next trial (a queued one first: the baseline, seeds, re-queued, recombined),
        its recipe, or why none can be made of its parameters."""
        trial = study.ask()
        self.recorder.claim(trial, controller=self.owner, run=self.run_id, target=self.target.name)
        try:
            if trial.user_attrs.get(S.ATTR_BASELINE):
                if baseline_params(self.exp.space, self.teacher_kind) is not None:
                    suggest(trial, self.exp.space)  # record the enqueued baseline params
                return trial, baseline_recipe(self.teacher_kind), ""
            params = suggest(trial, self.exp.space)
            return trial, recipe_from_params(params, self.exp.space, self.overrides(trial)), ""
        except ConfigError as e:
            return trial, None, str(e)

    def overrides(self, trial: optuna.Trial | optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The values a trial sets for parameters the space fixes (a seed's, a recombination's)."""
        seed = self._seeds.get(trial.user_attrs.get(S.ATTR_SEED, ""))
        if seed is not None:
            space = self.exp.space.parameters
            return {
                k: v for k, v in seed.params.items() if k in space and space[k].kind == "fixed"
            }
        return dict(trial.user_attrs.get(S.ATTR_FIXED, {}))

    def precheck(self, recipe: Recipe) -> str:
        """Refuse what the target's self-test found broken, and what this host's checks
        refuse, without a round trip to a worker (workers check again on their own
        hardware)."""
        from autoopt import hardware
        from autoopt.pipeline import check_recipe, make_context

        reason = self.host.refusal(recipe)
        if reason:
            return reason
        if self.target.resources or self.target.labels or self.ray_address:
            return ""  # the target's hardware may differ from the controller's
        try:
            check_recipe(
                recipe,
                make_context(recipe, self.workload, hardware.current(), device=self.target.device),
            )
        except CandidateError as e:
            return str(e)
        return ""

    def queue_starting_points(self, study: optuna.Study) -> Derivation:
        """Queue the standard starting points this space, model and host call for
        (:mod:`autoopt.search.starting`), but those the study has queued, run or measured."""
        if not self.exp.sampler.starting_points:
            return Derivation()
        from autoopt import hardware

        host = HostFacts.of(hardware.current(), self.target.device, self.host.results)
        found = derive(
            self.exp.space, host, depth=teacher_depth(self.workload.model), refusal=self.precheck
        )
        names, known = set(), set()
        for t in study.get_trials(deepcopy=False):
            names.add(t.user_attrs.get(S.ATTR_DERIVED))
            recipe = t.user_attrs.get(S.ATTR_RECIPE)
            if recipe is None and t.state in (TrialState.WAITING, TrialState.RUNNING):
                try:
                    params = t.params or t.system_attrs.get("fixed_params", {})
                    recipe = recipe_from_params(params, self.exp.space, self.overrides(t))
                except ConfigError:
                    recipe = None
            if recipe is not None:
                known.add(recipe_key(recipe))
        queued = Derivation(dropped=found.dropped)
        for point in found.points:
            if point.name in names or recipe_key(point.recipe) in known:
                continue
            study.enqueue_trial(
                point.params, user_attrs={S.ATTR_DERIVED: point.name}, skip_if_exists=False
            )
            queued.points.append(point)
        event = {"type": "starting_points", "queued": queued.names()}
        self.on_event({**event, "dropped": [f"{n}: {why}" for n, why in found.dropped]})
        return queued

    def explore(self, study: optuna.Study, known: set[str], attempts: int = 200) -> bool:
        """Queue one candidate not in ``known`` (recipe keys), drawn at random, that this
        host can build; False when ``attempts`` draws find none."""
        for _ in range(attempts):
            params = random_point(self.exp.space, self._rng)
            try:
                recipe = recipe_from_params(params, self.exp.space)
            except ConfigError:
                continue
            if recipe_key(recipe) in known or self.precheck(recipe):
                continue
            study.enqueue_trial(params, user_attrs={S.ATTR_EXPLORED: True}, skip_if_exists=False)
            self.on_event({"type": "explore", "recipe": recipe.describe()})
            return True
        return False

    def queued_keys(self, study: optuna.Study) -> set[str]:
        """Recipe keys of the trials queued or being asked for now."""
        keys = set()
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            try:
                params = t.params or t.system_attrs.get("fixed_params", {})
                keys.add(recipe_key(recipe_from_params(params, self.exp.space, self.overrides(t))))
            except ConfigError:
                continue
        return keys

    def recombine(self, study: optuna.Study) -> None:
        """Queue the front's models with the front's post-training settings (see
        :mod:`autoopt.search.recombine`); Optuna hands queued trials out before sampling."""
        per_model = self.exp.sampler.recombine
        if per_model <= 0:
            return
        # The plane recombination looks at: the workload's metric and the first latency
        # objective (the speed the experiment asks for).
        latency = next(
            (o for o in self.exp.objectives if o.startswith("latency")), "latency_p50_ms"
        )
        expressible = baseline_params(self.exp.space, self.teacher_kind) is not None
        points, tried = [], []
        for t in study.get_trials(deepcopy=False):
            fixed = self.overrides(t)
            if t.state == TrialState.COMPLETE:
                # A baseline with no parameters (the space cannot express it) has no model part.
                if t.user_attrs.get(S.ATTR_BASELINE) and not expressible:
                    continue
                accuracy, speed = t.user_attrs["accuracy"], t.user_attrs[latency]
                points.append(recombine.Point(t.number, t.params, accuracy, speed, fixed))
            else:
                params = t.params or t.system_attrs.get("fixed_params", {})
                tried.append({**params, **fixed})
        for r in recombine.recombinations(points, per_model, tried):
            origin = {"model_from": r.model_from, "settings_from": r.settings_from}
            study.enqueue_trial(
                r.params, user_attrs={S.ATTR_RECOMBINED: origin, S.ATTR_FIXED: r.fixed}
            )
            self.on_event({"type": "recombined", **origin})
