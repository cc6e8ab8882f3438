"""Model-optimization techniques: one module per family, each method registered by key.

The method modules (:mod:`.distillation`, :mod:`.pruning`, :mod:`.quantization`,
:mod:`.precision`) are imported by :mod:`autoopt.registry` on first lookup, not here, so that
importing the interface stays cheap.
"""

from __future__ import annotations

from autoopt.techniques._base import Context, Family, MethodConfig, Technique

__all__ = ["Context", "Family", "MethodConfig", "Technique"]
