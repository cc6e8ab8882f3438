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
