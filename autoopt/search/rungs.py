"""Training in rungs: successive halving over training steps, decided against the front.

Training a student or recovering a pruned model is where a sweep's time goes (a 3-layer
MiniLM student: about 40 minutes on 2 cores), and most of what a sampler proposes is not
worth training to the end. So a candidate whose stages train is first built with a share of
its steps and measured whole (int8, compiled, timed: its latency is already the final one,
since training changes weights, not shapes), and trained further only while it can still
reach the feasible front; the next rung goes on from the previous one's checkpoint
(:mod:`autoopt.checkpoints`), so the candidate trained to the end is the one trained in one
go. Optuna's pruners refuse multi-objective studies, so the rule lives here.

**Schedule.** With reduction ``eta`` and ``count`` rungs, the shares are ``eta**-count``, ...,
``eta**-1`` and 1 (defaults: 1/9, 1/3, 1), of the largest training stage's steps; a rung
that would train fewer than ``min_steps`` steps is left out. Every training stage of the
recipe trains the same share (a student and its pruning recovery alike).

**Rule.** At a rung with share ``f`` of the training done, a candidate measured at accuracy
``a`` may gain at most the *allowance* ``(1 - f) * (reference - a)`` by the end: the share of
training left times the distance to the reference (the teacher's accuracy, which imitation
approaches from below). It is continued iff its optimistic point -- accuracy ``a`` plus the
allowance, every other objective as measured at the rung -- meets the accuracy floor and no
trial on the feasible front dominates it. The allowance is generous on purpose: a cosine LR
schedule is still high at early rungs, and the final annealing gains more than a straight
line would predict; a candidate that cannot reach the front even so is one whose training
would be wasted. (On the 190 training candidates of the search benchmark's digits space, the
last two thirds of the training closed a median 0% and at most 81% of the gap left at the
rung of 1/3, which allows 67%: one candidate of 170 closed more; results/search/benchmark.md.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autoopt.config import RungConfig
    from autoopt.recipe import Recipe


def training_steps(recipe: Recipe) -> int:
    """The most steps any stage of ``recipe`` trains for (0: nothing trains)."""
    return max((step.config.training_steps for step in recipe.techniques()), default=0)


def schedule(total_steps: int, config: RungConfig) -> tuple[float, ...]:
    """The shares of its training each rung of a candidate gets, ending with 1.0."""
    if not config.enabled or total_steps <= 0:
        return (1.0,)
    shares = [config.reduction**-k for k in range(config.count, 0, -1)]
    kept = [f for f in shares if round(total_steps * f) >= config.min_steps]
    return (*kept, 1.0)


@dataclass(frozen=True)
class Decision:
    go_on: bool
    #: The accuracy the candidate could reach at most by the end of its training.
    optimistic: float
    reason: str


def allowance(accuracy: float, share: float, reference: float) -> float:
    """What training the remaining ``1 - share`` may add at most to ``accuracy``."""
    return max(0.0, 1.0 - share) * max(0.0, reference - accuracy)


def decide(
    values: Sequence[float],
    share: float,
    *,
    accuracy_index: int,
    directions: Sequence[str],
    floor: float,
    reference: float,
    front: Sequence[Sequence[float]],
) -> Decision:
    """Whether a candidate measured at a rung (``values``: its objectives there, in the
    study's order; ``share`` of its training done) can still reach the feasible ``front``
    (the objective values of its trials) above ``floor``."""
    accuracy = values[accuracy_index]
    optimistic = accuracy + allowance(accuracy, share, reference)
    if optimistic < floor:
        return Decision(
            False,
            optimistic,
            f"at {share:.0%} of its training it scores {accuracy:.4f}; even closing "
            f"{1 - share:.0%} of its gap to the reference {reference:.4f} it would reach "
            f"{optimistic:.4f}, below the floor {floor:.4f}",
        )
    point = list(values)
    point[accuracy_index] = optimistic
    for other in front:
        if _dominates(other, point, directions):
            shown = ", ".join(f"{v:.4g}" for v in other)
            return Decision(
                False,
                optimistic,
                f"at {share:.0%} of its training it scores {accuracy:.4f}; even at "
                f"{optimistic:.4f} by the end it would be dominated by a front trial ({shown})",
            )
    return Decision(True, optimistic, "")


def _dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether ``a`` is at least as good as ``b`` on every objective and better on one."""
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        gain = (x - y) if d == "maximize" else (y - x)
        if gain < 0:
            return False
        better = better or gain > 0
    return better


@dataclass
class RungPlan:
    """A trial trained in rungs: the share of its training at each rung, the one it is at,
    and what it measured at the rungs before."""

    shares: tuple[float, ...]
    index: int = 0
    measured: list[dict[str, Any]] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.shares[self.index]

    def advance(self, reached: float) -> None:
        """Move to the next rung above both this one and ``reached``, the share the build
        trained (whole steps: 333 of 3,000 is 0.111, just under the rung's 1/9, and taken
        alone would pick the same rung again, forever)."""
        self.index = next(
            i for i, f in enumerate(self.shares) if i > self.index and (f > reached or f >= 1.0)
        )
