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


def test_without_records_drops_only_the_named_notice(caplog: pytest.LogCaptureFixture) -> None:
    from autoopt.quiet import without_records

    log = logging.getLogger("autoopt.tests.notices")
    with caplog.at_level(logging.INFO, logger=log.name):
        with without_records(log.name, "is enabled for this cluster"):
            log.warning("Token authentication is enabled for this cluster. Set X to opt out.")
            log.warning("Token authentication is disabled: anyone can run code")
        log.warning("Token authentication is enabled for this cluster, again")
    assert [r.getMessage()[:30] for r in caplog.records] == [
        "Token authentication is disabl",
        "Token authentication is enable",
    ]
    assert not log.filters


def test_torchao_import_puts_both_loggers_back() -> None:
    from autoopt.quiet import torchao_import

    before = {n: logging.getLogger(n).level for n in ("torchao", "torch.utils._pytree")}
    with torchao_import():
        assert logging.getLogger("torchao").level == logging.ERROR
    assert {n: logging.getLogger(n).level for n in before} == before


def test_plot_pareto_draws_a_collapsed_trial_and_repeats(tmp_path: Path) -> None:
    import dataclasses

    collapsed = trial(2, 0.3, 0.2)
    again = dataclasses.replace(collapsed, number=3, duplicate_of=2)
    record = study(baseline(), trial(1, 0.97, 0.5, on_front=True), collapsed, again)
    assert [t.number for t in record.accuracy_view().below] == [2]
    plot_pareto(record, tmp_path / "pareto.png")
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
