"""The self-test end to end on the digits workload, its cache, and the refusal it gives."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import tests.plugins.wrong_kernels  # noqa: F401 - registers quantization.wrong_int8
from autoopt import hardware
from autoopt.config import LatencyConfig, SearchSpace, VerifyConfig, load_search_space
from autoopt.recipe import Recipe
from autoopt.resolve import make_step, recipe_from_dict
from autoopt.selftest import (
    BatchResult,
    PathResult,
    current_host,
    enumerate_paths,
    path_key,
    refusal_reason,
    run_selftest,
)
from autoopt.selftest import _probe as probe_module
from autoopt.selftest import _run as run_module
from autoopt.selftest._store import ResultStore
from autoopt.workloads import Workload
from tests.unit.selftest_models import residual_workload, stack_workload

LATENCY = LatencyConfig(batch_size=1, threads=1, extra_batch_sizes=[64])
WRONG_SPACE = """
parameters:
  pruning.method: [none, structured]
  backend.method: [torch_eager]
  quantization.method: [none, wrong_int8]
  quantization.wrong_int8.mode: [garbage, nan]
"""


@pytest.fixture(scope="module")
def home(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An AUTOOPT_HOME of this module's own, set after the digits teacher was loaded."""
    path = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOOPT_HOME", str(path))
        yield path


@pytest.fixture(scope="module")
def digits_space(repo: Path) -> SearchSpace:
    return load_search_space(repo / "search_spaces" / "digits_cnn.yaml")


@pytest.fixture(scope="module")
def results(workload: Workload, digits_space: SearchSpace, home: Path) -> list[PathResult]:
    return run_selftest(workload, digits_space, LATENCY, VerifyConfig())


def _by_label(results: list[PathResult]) -> dict[str, PathResult]:
    return {r.label: r for r in results}


def test_run_selftest_digits_passes_or_refuses_every_path_with_a_reason(
    results: list[PathResult], digits_space: SearchSpace
) -> None:
    assert [r.key for r in results] == [path_key(p) for p in enumerate_paths(digits_space)]
    for r in results:
        assert r.status in ("pass", "refused"), (r.label, r.status, r.reason)
        assert r.reason and not r.cached
        if r.status == "pass":
            assert r.mean_cosine is not None and r.mean_cosine >= r.threshold_mean
            assert r.min_cosine is not None and r.min_cosine >= r.threshold_min
            assert [b.batch_size for b in r.batches] == [1, 64] and r.nonfinite == 0
            assert r.speedup is not None and r.speedup > 0
            assert r.probe == "DigitsCNN (whole model)"
    by_label = _by_label(results)
    assert by_label["torch_eager + fp32"].mean_cosine == pytest.approx(1.0, abs=1e-9)
    # ONNX Runtime's CPU provider has no bf16 kernels, on any host.
    assert by_label["onnxruntime + bf16"].status == "refused"
    assert "bf16" in by_label["onnxruntime + bf16"].reason


@pytest.mark.parametrize(("precision", "flag"), [("fp16", "avx512_fp16"), ("bf16", "avx512_bf16")])
def test_run_selftest_refuses_half_precision_on_pytorch_only_without_the_cpu_feature(
    results: list[PathResult], precision: str, flag: str
) -> None:
    result = _by_label(results)[f"torch_eager + {precision}"]
    hw = hardware.current()
    native = hw.native_fp16 if precision == "fp16" else hw.native_bf16
    if native:
        assert result.status == "pass", result.reason
        assert result.precision_class == "half"
    else:
        assert result.status == "refused"
        assert flag in result.reason and hw.cpu_model in result.reason


def test_run_selftest_second_call_reads_the_cache_and_builds_nothing(
    results: list[PathResult],
    workload: Workload,
    digits_space: SearchSpace,
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second call built something")

    monkeypatch.setattr(run_module, "build", forbidden)
    monkeypatch.setattr(probe_module, "build_probe", forbidden)
    again = run_selftest(workload, digits_space, LATENCY, VerifyConfig())
    assert all(r.cached for r in again)
    assert [dataclasses.replace(r, cached=False) for r in again] == results
    assert len(list((home / "selftest").glob("*.json"))) == 1


def test_result_store_key_changes_with_host_versions_probe_and_threads(
    workload: Workload, home: Path
) -> None:
    host = current_host("cpu")
    sizes = (1, 64)

    def path(h: object = host, s: tuple[int, ...] = sizes, threads: int = 1) -> Path:
        return ResultStore(run_module._context(h, workload, s, threads)).path  # type: ignore[arg-type]

    assert path() == path()
    assert path(dataclasses.replace(host, cpu_flags=(*host.cpu_flags, "amx_int8"))) != path()
    newer = {**host.versions, "torch": "99.0"}
    assert path(dataclasses.replace(host, versions=newer)) != path()
    assert path(s=(1, 32)) != path()
    assert path(threads=2) != path()
    eager = Recipe(precision=make_step("precision.fp32"), backend=make_step("backend.torch_eager"))
    ort = dataclasses.replace(eager, backend=make_step("backend.onnxruntime"))
    student = dataclasses.replace(eager, distillation=make_step("distillation.kd"))
    assert run_module._entry_key(eager) == run_module._entry_key(student)
    assert run_module._entry_key(eager) != run_module._entry_key(ort)


def test_run_selftest_fails_a_path_that_computes_garbage_or_nan(
    workload: Workload, home: Path
) -> None:
    space = SearchSpace.model_validate(yaml.safe_load(WRONG_SPACE))
    by_label = _by_label(run_selftest(workload, space, LATENCY, VerifyConfig()))
    assert by_label["torch_eager + fp32"].status == "pass"
    garbage = by_label["torch_eager + wrong_int8"]
    assert garbage.status == "fail" and garbage.mean_cosine is not None
    assert garbage.mean_cosine < 0.5 and "mean cosine" in garbage.reason
    nan = by_label["torch_eager + wrong_int8(nan)"]
    assert nan.status == "fail" and nan.nonfinite and "NaN" in nan.reason

    candidate = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.torch_eager"),
        pruning=make_step("pruning.structured", {"amount": 0.3}),
        quantization=make_step("quantization.wrong_int8"),
    )
    reason = refusal_reason(by_label.values(), candidate)
    host = current_host("cpu")
    assert reason is not None
    assert reason.startswith(
        f"host self-test: torch_eager + wrong_int8 gives mean cosine {garbage.mean_cosine:.3f}"
    )
    assert "on the probe (DigitsCNN (whole model), " in reason
    assert reason.endswith(
        f"on {host.describe()} with torch {host.versions['torch']}, "
        f"torchao {host.versions['torchao']}"
    )
    baseline = dataclasses.replace(candidate, quantization=None)
    assert refusal_reason(by_label.values(), baseline) is None


def _result(status: str, batches: tuple[BatchResult, ...] = ()) -> PathResult:
    recipe = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step(
            "backend.torch_compile", {"mode": "max-autotune-no-cudagraphs", "freezing": True}
        ),
        quantization=make_step("quantization.static_int8", {"per_channel": True}),
    )
    return PathResult(
        key=path_key(recipe),
        label="torch_compile(max-autotune-no-cudagraphs, freezing) + static_int8(per_channel)",
        recipe=recipe.to_dict(),
        status=status,  # type: ignore[arg-type]
        reason="mean cosine 0.030 at batch 1, below 0.9",
        precision_class="int8",
        threshold_mean=0.9,
        threshold_min=0.8,
        mean_cosine=0.03,
        min_cosine=0.01,
        nonfinite=0,
        batches=batches,
        probe="BertLayer",
        host="AMD EPYC 9B14 (avx512_vnni, avx512_bf16, no avx512_fp16, no amx)",
        versions={"torch": "2.13.0", "torchao": "0.18.0", "onnxruntime": "1.32.0"},
    )


def test_refusal_reason_names_path_cosine_batch_probe_host_and_versions() -> None:
    batches = (
        BatchResult(1, "1x128x384 + 1x1x128x128", 8, 0.03, 0.01, 0),
        BatchResult(64, "64x128x384 + 64x1x128x128", 64, 0.5, 0.2, 0),
    )
    failed = _result("fail", batches)
    candidate = recipe_from_dict(failed.recipe)
    assert refusal_reason([failed], candidate) == (
        "host self-test: torch_compile(max-autotune-no-cudagraphs, freezing) + "
        "static_int8(per_channel) gives mean cosine 0.030 (int8 paths need 0.9) at batch 1 on "
        "the probe (BertLayer, 1x128x384 + 1x1x128x128) on AMD EPYC 9B14 (avx512_vnni, "
        "avx512_bf16, no avx512_fp16, no amx) with torch 2.13.0, torchao 0.18.0"
    )
    for status in ("pass", "refused", "inconclusive"):
        assert refusal_reason([_result(status, batches)], candidate) is None
    other = dataclasses.replace(candidate, backend=make_step("backend.torch_eager"))
    assert refusal_reason([failed], other) is None


def test_path_result_round_trips_through_json() -> None:
    result = _result("fail", (BatchResult(1, "1x4", 8, 0.5, 0.25, 3),))
    assert PathResult.from_dict(result.to_dict()) == result


def test_run_selftest_retries_on_the_whole_model_then_says_inconclusive(home: Path) -> None:
    # ONNX Runtime's fusions need a model layout, which a stack of Linear blocks has not: not
    # on the blocks, not on the whole model; nothing about numerics, so inconclusive, not FAIL.
    space = SearchSpace.model_validate(
        yaml.safe_load(
            """
            parameters:
              backend.method: [onnxruntime]
              backend.onnxruntime.transformer_fusions: [true]
            """
        )
    )
    results = run_selftest(stack_workload(), space, LATENCY, VerifyConfig())
    by_label = _by_label(results)
    assert by_label["torch_eager + fp32"].probe == "Block x2"
    fused = by_label["onnxruntime(transformer_fusions) + fp32"]
    assert fused.status == "inconclusive" and fused.mean_cosine is None
    assert "records no model layout" in fused.reason and "on the whole model:" in fused.reason
    assert refusal_reason(results, recipe_from_dict(fused.recipe)) is None


def test_inductor_int8_planner_bug_is_caught_and_its_workaround_passes(home: Path) -> None:
    """torch 2.13 corrupts PT2E int8 under max-autotune when Inductor reuses buffers in
    place around the C++ GEMM template (results/inductor_int8_autotune). The backend's
    default turns that reuse off there; the self-test, which compiles with the template
    wherever it applies, passes the default and fails in-place reuse on hosts whose int8
    GEMM template exists (VNNI or AMX)."""

    space = SearchSpace.model_validate(
        {
            "parameters": {
                "quantization.method": ["static_int8"],
                "precision.method": "fp32",
                "backend.method": ["torch_compile"],
                "backend.torch_compile.mode": "max-autotune-no-cudagraphs",
                "backend.torch_compile.freezing": True,
                "backend.torch_compile.inplace_buffers": ["auto", "on"],
                "quantization.static_int8.per_channel": True,
            }
        }
    )
    results = run_selftest(residual_workload(), space, LATENCY, VerifyConfig(reference_samples=8))
    int8 = {
        r.recipe["backend"]["config"]["inplace_buffers"]: r
        for r in results
        if "static_int8" in r.label
    }
    auto, reuse = int8["auto"], int8["on"]
    assert auto.status == "pass", auto.reason
    flags = hardware.current().cpu_flags
    if {"avx512_vnni", "amx_int8"} & set(flags):
        assert reuse.status == "fail", reuse.reason
        assert refusal_reason(results, recipe_from_dict(reuse.recipe)) is not None
    else:
        assert reuse.status in ("pass", "fail"), reuse.reason
