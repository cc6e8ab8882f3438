"""Broken or merely inaccurate: only outputs unrelated to the teacher's fail verification."""

from __future__ import annotations

import numpy as np

from autoopt.related import relation

RNG = np.random.default_rng(0)
N, CLASSES, DIM = 64, 10, 32


def _teacher_logits() -> np.ndarray:
    return RNG.standard_normal((N, CLASSES)) * 3


def test_inaccurate_classifier_is_related() -> None:
    teacher = _teacher_logits()
    student = teacher.copy()
    wrong = RNG.random(N) < 0.7  # 70% of its answers wrong: far below any accuracy floor
    student[wrong] = RNG.standard_normal((int(wrong.sum()), CLASSES)) * 3
    found = relation(teacher, student, "logits")
    assert found.related, found.detail


def test_random_or_collapsed_classifier_is_unrelated() -> None:
    teacher = _teacher_logits()
    assert not relation(teacher, RNG.standard_normal((N, CLASSES)), "logits").related
    collapsed = np.zeros((N, CLASSES))
    collapsed[:, 3] = 1.0  # every input: the same class, whatever it is
    found = relation(teacher, collapsed, "logits")
    assert not found.related and "by chance" in found.detail


def test_noisy_embeddings_are_related_and_input_blind_ones_are_not() -> None:
    common = RNG.standard_normal(DIM) * 4  # embeddings of one model share a direction
    teacher = common + RNG.standard_normal((N, DIM))
    noisy = teacher + RNG.standard_normal((N, DIM)) * 1.5
    assert relation(teacher, noisy, "embedding").related
    # Cosine near the teacher's on average (the shared direction), yet blind to the input.
    blind = common + RNG.standard_normal((N, DIM))
    found = relation(teacher, blind, "embedding")
    assert found.statistic > 0.8 and not found.related, found.detail
