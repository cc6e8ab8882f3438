"""The ``autoopt`` command line: parses, calls :mod:`autoopt.api`, prints. No logic of its own.

Results go to stdout, progress and diagnostics to stderr. Exit codes: 0 success, 2 bad input
(configuration, arguments, unknown study), 1 anything else, 130 interrupted.

The commands are grouped by what they do (:mod:`._sweep`: run, validate, doctor;
:mod:`._inspect`: pareto, trials, studies; :mod:`._ship`: best, export, dashboard); importing
each registers its commands on :data:`app`, in the order ``--help`` lists them.
"""

# Registered in this order, which --help keeps: run, validate, doctor first.
from autoopt.cli import _sweep  # noqa: F401  # isort: skip
from autoopt.cli import _inspect, _ship  # noqa: F401  # isort: skip
from autoopt.cli._console import app

__all__ = ["app"]
