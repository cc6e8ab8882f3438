"""The rung schedule and the rule that decides whether a candidate trains on."""

from __future__ import annotations

from autoopt.checkpoints import rung_steps
from autoopt.config import RungConfig
from autoopt.search.rungs import RungPlan, allowance, decide, schedule

MAX_MIN = ["maximize", "minimize"]


def test_schedule_is_geometric_and_skips_rungs_too_short_to_measure() -> None:
    config = RungConfig()  # reduction 3, 2 rungs before the full run, 100 steps at least
    assert schedule(3000, config) == (1 / 9, 1 / 3, 1.0)
    assert schedule(600, config) == (1 / 3, 1.0)  # 67 steps is too short a rung
    assert schedule(200, config) == (1.0,)
    assert schedule(0, config) == (1.0,)  # nothing trains
    assert schedule(3000, RungConfig(enabled=False)) == (1.0,)
    assert schedule(8000, RungConfig(reduction=4, count=3, min_steps=1)) == (
        1 / 64,
        1 / 16,
        1 / 4,
        1.0,
    )


def test_each_rung_goes_on_to_the_next_whatever_whole_steps_the_share_rounds_to() -> None:
    # 3,000 steps: the first rung trains 333, a share of 0.111 just under its 1/9; taken as
    # the rung it reached, it picked the same rung again, and a MiniLM student was rebuilt
    # from its cached 333 steps and re-measured for the rest of the sweep.
    for total in (*range(100, 5001, 7), 3000):
        config = RungConfig(min_steps=1)
        plan = RungPlan(schedule(total, config))
        seen = [plan.index]
        for _ in plan.shares[1:]:
            plan.advance(rung_steps(total, plan.share) / total)
            seen.append(plan.index)
        assert seen == list(range(len(plan.shares))), total


def test_a_build_that_trained_past_its_rung_skips_the_rungs_it_passed() -> None:
    plan = RungPlan((1 / 9, 1 / 3, 1.0))
    plan.advance(0.5)  # the cache held a later checkpoint of its stage
    assert plan.share == 1.0


def test_allowance_is_the_remaining_share_of_the_gap_to_the_reference() -> None:
    assert allowance(0.90, 1 / 3, 1.0) == (2 / 3) * 0.10
    assert allowance(1.0, 1 / 9, 1.0) == 0.0
    assert allowance(0.95, 1.0, 1.0) == 0.0  # nothing left to train


def test_decide_stops_a_candidate_that_cannot_reach_the_floor() -> None:
    # 0.80 at a ninth of its training: even 8/9 of the gap to 1.0 gives 0.978 < 0.99.
    d = decide([0.80, 5.0], 1 / 9, accuracy_index=0, directions=MAX_MIN, floor=0.99,
               reference=1.0, front=[])  # fmt: skip
    assert not d.go_on and "below the floor 0.9900" in d.reason
    assert abs(d.optimistic - (0.80 + 8 / 9 * 0.2)) < 1e-12
    # The same score goes on under a floor it can still reach.
    assert decide([0.80, 5.0], 1 / 9, accuracy_index=0, directions=MAX_MIN, floor=0.95,
                  reference=1.0, front=[]).go_on  # fmt: skip


def test_decide_stops_what_the_front_dominates_even_at_its_best() -> None:
    front = [[0.995, 4.0], [0.999, 10.0]]
    # Slower than a front point that is more accurate than it could ever get.
    slow = decide([0.96, 6.0], 1 / 3, accuracy_index=0, directions=MAX_MIN, floor=0.95,
                  reference=1.0, front=front)  # fmt: skip
    assert not slow.go_on and "dominated" in slow.reason
    # Faster than every front point: it may become the fastest feasible one.
    fast = decide([0.96, 3.0], 1 / 3, accuracy_index=0, directions=MAX_MIN, floor=0.95,
                  reference=1.0, front=front)  # fmt: skip
    assert fast.go_on and fast.reason == ""
    # Slower, but it could end more accurate than the fastest front point beside it.
    between = decide([0.99, 6.0], 1 / 3, accuracy_index=0, directions=MAX_MIN, floor=0.95,
                     reference=1.0, front=front)  # fmt: skip
    assert between.go_on
