"""Library calls leave the process as they found it: logging, warnings, matplotlib, stdout."""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path

import matplotlib
import pytest
from test_select import baseline, study, trial  # tests/unit/test_select.py

from autoopt.quiet import logger_level
from autoopt.report import plot_pareto
from autoopt.techniques.quantization._graph import quiet
from autoopt.torch_export import register_inductor_passes


def test_logger_level_is_put_back_and_never_lowered() -> None:
    log = logging.getLogger("autoopt.tests.chatty")
    log.setLevel(logging.NOTSET)
    with logger_level(log.name, logging.ERROR):
        assert log.level == logging.ERROR
    assert log.level == logging.NOTSET
    log.setLevel(logging.CRITICAL)
    with logger_level(log.name, logging.ERROR):
        assert log.level == logging.CRITICAL
    assert log.level == logging.CRITICAL


def test_registering_inductor_passes_leaves_torchaos_logger_alone() -> None:
    log = logging.getLogger("torchao")
    before = log.level
    register_inductor_passes()
    assert log.level == before


def test_quantizer_quiet_keeps_prints_off_stdout_and_restores_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stdout, filters = sys.stdout, list(warnings.filters)
    with quiet():
        print("Collecting tensor data and making histogram ...")
    assert sys.stdout is stdout and warnings.filters == filters
    assert capsys.readouterr().out == ""


def test_plot_pareto_does_not_switch_matplotlibs_backend(tmp_path: Path) -> None:
    backend = dict.__getitem__(matplotlib.rcParams, "backend")
    record = study(baseline(), trial(1, 0.97, 0.5, on_front=True), trial(2, 0.9, 0.1))
    plot_pareto(record, tmp_path / "pareto.png")
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert dict.__getitem__(matplotlib.rcParams, "backend") == backend
    if "matplotlib.pyplot" in sys.modules:
        assert not sys.modules["matplotlib.pyplot"].get_fignums()
