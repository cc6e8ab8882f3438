"""The families a recipe is made of, declared once.

A recipe holds at most one method of each family, applied in this order; the backend comes last
and serves what the techniques built. Everything that needs to know which families exist, which
may be skipped, which method a family defaults to, or which ones train a model reads it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

#: The model-transforming families: a :class:`~autoopt.plugins.Technique`'s ``family``.
TechniqueFamily = Literal["distillation", "pruning", "quantization", "precision"]
Family = Literal[TechniqueFamily, "backend"]

#: Every family, in pipeline order.
FAMILIES: tuple[Family, ...] = get_args(Family)
#: The method name that skips an optional family (``pruning.method: none``).
NONE_METHOD = "none"
#: Families a recipe may skip; the others (precision, backend) are always present.
OPTIONAL_FAMILIES: tuple[Family, ...] = ("distillation", "pruning", "quantization")
#: The method a required family gets when its ``<family>.method`` parameter is inactive
#: (e.g. ``precision.method`` declared ``when: {quantization.method: none}``).
DEFAULT_METHODS: Mapping[str, str] = {"precision": "fp32"}
#: Families whose stages train a model (minutes, built once by the stage cache); the others are
#: post-training settings (seconds on a cached model). Recombination pairs the two parts.
MODEL_FAMILIES: tuple[Family, ...] = ("distillation", "pruning")
