"""One run's loop: keep the executor busy within the budget, tell what comes back.

The baseline goes first and alone; then up to ``workers`` trials are in flight. A stop request
(Ctrl-C) is checked every poll: the trials in flight are cancelled and recorded. At the time
budget they are cancelled and queued again for the study's next run (``at_timeout: cancel``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import optuna
from optuna.trial import TrialState

from autoopt.errors import AutoOptError
from autoopt.search.proposals import Asked
from autoopt.study import schema as S
from autoopt.study.recorder import requeue

if TYPE_CHECKING:
    import threading

    from autoopt.config import Experiment
    from autoopt.execution import Executor, Finished
    from autoopt.recipe import Recipe
    from autoopt.search.ledger import RunLedger
    from autoopt.search.proposals import Proposals
    from autoopt.study.records import TrialRecord

#: How long one poll of the executor waits: also how soon a stop request is noticed.
POLL_S = 0.5


class Teller(Protocol):
    """What the loop needs of its controller: the run's settings and parts, its in-flight
    bookkeeping, and where each kind of outcome is told."""

    exp: Experiment
    workers: int
    stop_requested: threading.Event
    looping: bool
    ledger: RunLedger
    proposals: Proposals
    warnings: list[str]
    overhead: float
    baseline: dict[str, float] | None
    asked: dict[int, Asked]
    pending: list[Finished]

    def find_baseline(self, study: optuna.Study) -> dict[str, float] | None: ...
    def on_event(self, event: dict[str, Any]) -> None: ...
    def prior(self, trial: optuna.Trial, recipe: Recipe) -> TrialRecord | None: ...
    def tell_finished(self, study: optuna.Study, done: Finished) -> None: ...
    def tell_pending(self, study: optuna.Study) -> None: ...
    def tell_repeat(self, trial: optuna.Trial, recipe: Recipe, prior: TrialRecord) -> None: ...
    def tell_refused(self, trial: optuna.Trial, recipe: Recipe | None, reason: str) -> None: ...
    def fail(
        self, asked: Asked, stage: str, reason: str, rejected: bool = False, **kw: Any
    ) -> None: ...


class RunLoop:
    """One run's loop: keep the executor busy within the budget, tell what comes back."""

    def __init__(
        self,
        c: Teller,
        study: optuna.Study,
        executor: Executor,
        budget: int | None,
        done: int,
        start: float,
        timeout_s: float | None,
    ) -> None:
        self.c, self.study, self.executor = c, study, executor
        self.budget, self.start, self.timeout_s = budget, start, timeout_s
        self.started = self.first = done
        self.refused = 0
        self.max_refused = max(20, 3 * (budget or 20))
        self.exhausted = False

    def out_of_time(self) -> bool:
        return self.timeout_s is not None and time.monotonic() - self.start >= self.timeout_s

    def budget_left(self) -> bool:
        if self.budget is not None and self.started >= self.budget:
            return False
        return not self.out_of_time() and not self.exhausted

    def run(self) -> str:
        c = self.c
        try:
            c.looping = True
            while True:
                if c.stop_requested.is_set():
                    raise KeyboardInterrupt
                if c.baseline is None:
                    c.baseline = c.find_baseline(self.study)
                c.tell_pending(self.study)
                # Until the baseline is known, one trial at a time (the baseline, which the
                # queue hands out first): candidates are judged against it, and its timing
                # must not share the host with their builds.
                slots = c.workers if c.baseline is not None else 1
                while self.executor.in_flight < slots and self.budget_left():
                    self.launch()
                if not self.executor.in_flight:
                    if c.pending and c.baseline is None and not c.ledger.baseline_lost(self.study):
                        time.sleep(POLL_S)  # another controller is still measuring the baseline
                        continue
                    break
                for done in self.executor.poll(POLL_S):
                    c.tell_finished(self.study, done)
                self.check_baseline()
                if self.out_of_time() and c.exp.budget.at_timeout == "cancel":
                    self.cancel(
                        f"cancelled at the run's time budget of {self.timeout_s:g}s; queued "
                        "again for the study's next run",
                        requeue_them=True,
                    )
        except KeyboardInterrupt:
            self.cancel("interrupted by the user (Ctrl-C)")
            return "interrupted"
        finally:
            for done in c.pending:
                reason = "no baseline was measured to judge this trial against"
                c.fail(c.asked[done.number], "tell", reason)
            c.pending.clear()
        if self.timeout_s is not None and self.out_of_time():
            return "timeout"
        return "budget"

    def launch(self) -> None:
        c = self.c
        t0 = time.perf_counter()
        trial, recipe, error = c.proposals.ask(self.study)
        if recipe is not None and not error:
            error = c.proposals.precheck(recipe)
        c.overhead += time.perf_counter() - t0
        if error:
            # Refused before anything ran: recorded, but not counted against the budget (a
            # bounded number of them), so N trials means N candidates really tried.
            c.tell_refused(trial, recipe, error)
            self.refused += 1
            if self.refused > self.max_refused:
                self.exhausted = True
                c.warnings.append(
                    f"stopped after {self.refused} refused candidates: the space mostly "
                    "declares combinations this host cannot run (see the reasons)"
                )
            return
        assert recipe is not None  # noqa: S101 - no error means a recipe
        self.started += 1
        prior = c.prior(trial, recipe)
        if prior is not None:
            c.tell_repeat(trial, recipe, prior)
        else:
            asked = Asked(trial, recipe)
            c.asked[trial.number] = asked
            execution = c.exp.execution
            # The baseline has its own limit (by default none): a candidate-sized limit must
            # not cancel it, and with it every judgement of the sweep.
            limit = (
                execution.baseline_timeout_s if asked.is_baseline else execution.trial_timeout_s
            )
            self.executor.submit(c.proposals.task(trial.number, recipe), limit)
            event = {"type": "start", "trial": trial.number, "recipe": recipe.describe()}
            c.on_event({**event, "baseline": asked.is_baseline})
        if c.exp.sampler.name == "grid" and _grid_exhausted(self.study):
            self.exhausted = True

    def check_baseline(self) -> None:
        c = self.c
        if c.baseline is None and c.ledger.baseline_lost(self.study):
            self.cancel("cancelled: the baseline failed")
            raise AutoOptError(
                "the baseline (unoptimized teacher) failed, so no candidate can be judged "
                f"against it: {_last_failure(self.study)}"
            )

    def cancel(self, reason: str, *, requeue_them: bool = False) -> None:
        for done in self.executor.cancel_all(reason):
            asked = self.c.asked[done.number]
            self.c.fail(asked, done.phase, reason, stages=done.stages, retries=done.attempts)
            if requeue_them:
                t = asked.trial
                requeue(self.study, t.number, t.params, t.user_attrs)


def _grid_exhausted(study: optuna.Study) -> bool:
    sampler = study.sampler
    return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)


def _last_failure(study: optuna.Study) -> str:
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if not failed:
        return "unknown reason"
    attrs = failed[-1].user_attrs
    return f"[{attrs.get(S.ATTR_FAILURE_STAGE, '?')}] {attrs.get(S.ATTR_FAILURE_REASON, '?')}"
