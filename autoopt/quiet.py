"""Other libraries' chatter, silenced for one call and put back after it.

Library code never changes another library's logging for the process: the CLI configures
output. Where a dependency reports something that does not concern the user (kernels for
hardware this host lacks, an optimizer's statistics), the call that triggers it is wrapped here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def logger_level(name: str, level: int) -> Iterator[None]:
    """Logger ``name`` (and its children that inherit its level) drops records below
    ``level`` for the duration; a stricter level set by the user is kept."""
    logger = logging.getLogger(name)
    previous = logger.level
    logger.setLevel(max(previous, level))
    try:
        yield
    finally:
        logger.setLevel(previous)


@contextlib.contextmanager
def without_records(name: str, *fragments: str) -> Iterator[None]:
    """Logger ``name`` drops, for the duration, the records whose message contains one of
    ``fragments``: one known notice silenced, every other record of that logger kept."""

    def keep(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in fragments)

    logger = logging.getLogger(name)
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


@contextlib.contextmanager
def torchao_import() -> Iterator[None]:
    """Around the first import of torchao (directly, or through transformers' quantizers).

    torchao logs a warning per CUDA/Triton extension it cannot load ("Failed to load
    _C_mxfp8...so", "Detected no triton") and torch one per Enum torchao registers with pytree
    (a deprecation): kernels and registrations autoopt does not use, printed by every process
    that imports it. Other warnings of torchao and torch are kept.
    """
    with (
        logger_level("torchao", logging.ERROR),
        logger_level("torch.utils._pytree", logging.ERROR),
    ):
        yield
