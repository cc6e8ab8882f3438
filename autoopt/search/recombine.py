"""Recombining the front: each trained model with the post-training settings that won elsewhere.

A candidate's parameters split in two. The *model* part (distillation, pruning with recovery)
trains for minutes and is built once by the stage cache; the *settings* part (quantization,
precision, backend) takes seconds on a cached model. A joint sampler such as TPE rarely pairs a
model trained late in a sweep with the settings that already proved fast on another model, so
a sweep can train a student and never measure it with the int8 recipe that won on the teacher.

After each trial, every model worth pairing is paired with the settings of up to ``per_model``
front members (most accurate first) it has not been tried with. A model is worth pairing when
it is on the accuracy/latency Pareto front, or on the front of the trials that share its
settings: a student measured only in fp32 is beaten by the teacher with int8, yet with int8 it
may be the fastest model above some accuracy. These pure functions choose the pairs; the
controller enqueues them, so they run before the sampler's next proposal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from autoopt.plugins import MODEL_FAMILIES


@dataclass(frozen=True)
class Point:
    """A measured candidate: its parameters (sampled, plus any it fixed) and its two axes."""

    number: int
    params: Mapping[str, Any]
    accuracy: float
    latency_ms: float
    #: Values it set for parameters the space fixes (a seed candidate's), kept with the part
    #: they belong to so a recombination builds the same settings.
    fixed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recombination:
    params: dict[str, Any]
    fixed: dict[str, Any]
    model_from: int
    settings_from: int


def is_model_param(name: str) -> bool:
    return name.split(".", 1)[0] in MODEL_FAMILIES


def split(params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model part, settings part) of a parameter dict."""
    model = {k: v for k, v in params.items() if is_model_param(k)}
    return model, {k: v for k, v in params.items() if not is_model_param(k)}


def _key(part: Mapping[str, Any]) -> str:
    return json.dumps(dict(part), sort_keys=True, default=str)


def pareto_front(points: Iterable[Point]) -> list[Point]:
    """The points no other point beats on both accuracy (higher) and latency (lower), most
    accurate first; of equal points the earliest trial."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (-p.accuracy, p.latency_ms, p.number)):
        if all(p.latency_ms < q.latency_ms for q in front):
            front.append(p)
    return front


def recombinations(
    points: Iterable[Point], per_model: int, tried: Iterable[Mapping[str, Any]] = ()
) -> list[Recombination]:
    """Models worth pairing × front settings (the ``per_model`` most accurate), minus pairs
    tried. Models on the front come first, then those on the front of their own settings.

    A pair counts as tried when a point, or any of ``tried`` (the parameters, fixed values
    included, of trials queued, running, failed or refused), has exactly its parameters.
    """
    points = list(points)
    if per_model <= 0 or not points:
        return []
    seen = {_key({**p.params, **p.fixed}) for p in points} | {_key(t) for t in tried}
    # (model part, settings part) of each point, fixed values included, split once.
    parts = {p.number: split({**p.params, **p.fixed}) for p in points}
    models: dict[str, Point] = {}
    settings: dict[str, Point] = {}
    for p in pareto_front(points):
        models.setdefault(_key(parts[p.number][0]), p)
        settings.setdefault(_key(parts[p.number][1]), p)
    same_settings: dict[str, list[Point]] = {}
    for p in points:
        same_settings.setdefault(_key(parts[p.number][1]), []).append(p)
    for group in same_settings.values():
        for p in pareto_front(group):
            models.setdefault(_key(parts[p.number][0]), p)
    out: list[Recombination] = []
    for m in models.values():
        m_params, m_fixed = split(m.params)[0], split(m.fixed)[0]
        for s in list(settings.values())[:per_model]:
            params = {**m_params, **split(s.params)[1]}
            fixed = {**m_fixed, **split(s.fixed)[1]}
            key = _key({**params, **fixed})
            if key in seen:
                continue
            seen.add(key)
            out.append(Recombination(params, fixed, m.number, s.number))
    return out
