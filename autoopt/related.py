"""Is a candidate's output related to the teacher's at all? The line between a broken build
and an inaccurate one.

A candidate that builds and runs but loses accuracy badly (a pruned model before recovery)
is a *measured* infeasible trial: its accuracy is recorded and the search learns from it.
Only outputs that carry no information about the teacher's fail verification as broken,
judged by a one-sided test at ``Z`` standard errors (false "broken" rate about 0.1% for a
candidate that is in fact related, under the tests' normal approximations):

* logits: the top-1 agreement with the teacher against the agreement two *independent*
  classifiers with the same class frequencies would reach by chance (sum over classes of the
  product of the two frequencies), a binomial proportion over the reference samples;
* embeddings: each sample's cosine to the teacher's embedding of the *same* input against its
  cosine to the teacher's embedding of *another* input (paired differences): embeddings of
  one model share a common direction, so a raw cosine is no evidence of relation, but a
  candidate that follows its inputs is closer to the teacher on the same input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Standard errors above chance a related candidate must reach.
Z = 3.0


@dataclass(frozen=True)
class Relation:
    related: bool
    #: What was measured (agreement, or mean paired cosine difference) and its chance level.
    statistic: float
    chance: float
    detail: str


def relation(reference: np.ndarray, outputs: np.ndarray, output_kind: str) -> Relation:
    if output_kind == "logits":
        return _logits(reference, outputs)
    return _embeddings(reference, outputs)


def _logits(reference: np.ndarray, outputs: np.ndarray) -> Relation:
    n = len(reference)
    teacher, student = reference.argmax(-1), outputs.argmax(-1)
    classes = reference.shape[-1]
    p_t = np.bincount(teacher, minlength=classes) / n
    p_s = np.bincount(student, minlength=classes) / n
    chance = float(np.dot(p_t, p_s))
    agreement = float(np.mean(teacher == student))
    se = math.sqrt(max(chance * (1 - chance), 1e-12) / n)
    related = agreement > chance + Z * se
    detail = (
        f"top-1 agreement with the teacher {agreement:.1%} on {n} reference inputs, where "
        f"independent predictions with the same class frequencies agree {chance:.1%} of the "
        "time by chance"
    )
    return Relation(related, agreement, chance, detail)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _embeddings(reference: np.ndarray, outputs: np.ndarray) -> Relation:
    n = len(reference)
    t, s = _unit(reference), _unit(outputs)
    same = np.sum(s * t, axis=1)
    other = np.sum(s * np.roll(t, 1, axis=0), axis=1)
    diff = same - other
    mean = float(diff.mean()) if n else 0.0
    se = float(diff.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    related = n > 1 and mean > Z * se
    detail = (
        f"mean cosine to the teacher {float(same.mean()):.3f} on the same input and "
        f"{float(other.mean()):.3f} on another input, over {n} reference inputs"
    )
    return Relation(related, float(same.mean()), float(other.mean()), detail)
