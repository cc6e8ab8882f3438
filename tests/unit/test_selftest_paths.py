"""Path enumeration: every kernel path a space allows, nothing it does not, as recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoopt.config import SearchSpace, load_search_space
from autoopt.recipe import Recipe
from autoopt.resolve import baseline_recipe, make_step
from autoopt.selftest import describe_path, enumerate_paths, kernel_settings, path_key


@pytest.fixture(scope="module")
def minilm_paths(repo: Path) -> list[Recipe]:
    return enumerate_paths(load_search_space(repo / "search_spaces" / "minilm.yaml"))


@pytest.fixture(scope="module")
def digits_paths(repo: Path) -> list[Recipe]:
    return enumerate_paths(load_search_space(repo / "search_spaces" / "digits_cnn.yaml"))


def _space(text: str) -> SearchSpace:
    return SearchSpace.model_validate(yaml.safe_load(text))


def test_enumerate_paths_minilm_has_static_int8_under_both_compile_modes(
    minilm_paths: list[Recipe],
) -> None:
    labels = [describe_path(r) for r in minilm_paths]
    for mode in ("", "max-autotune-no-cudagraphs, "):
        for wrapper in ("", ", cpp_wrapper"):
            assert f"torch_compile({mode}freezing{wrapper}) + static_int8(per_channel)" in labels
    assert "onnxruntime(transformer_fusions, flush_denormals) + fp32" in labels
    assert "onnxruntime(flush_denormals) + static_int8(per_channel)" in labels
    assert "torch_compile + bf16" in labels
    assert "openvino(static_shapes) + nncf_int8" in labels
    assert "torch_compile(max-autotune-no-cudagraphs, freezing) + qat_int8" in labels
    assert "openvino(static_shapes) + nncf_weights(int4_sym)" in labels
    assert "torch_eager + codebook" in labels
    # 18 paths on the first three backends and 12 on openvino, plus the 6 where nncf_int8 is
    # declared off openvino (refused by check(), without a build): 36; then qat_int8 on the 4
    # frozen compile paths, 2 openvino ones and 2 refused backends (8), codebook on eager and
    # torch.compile and 3 refused (5), nncf_weights' 2 modes on 2 openvino paths and 3
    # refused backends (10).
    assert len(labels) == len(set(labels)) == 36 + 8 + 5 + 10


def test_enumerate_paths_starts_with_the_baseline(
    minilm_paths: list[Recipe], digits_paths: list[Recipe]
) -> None:
    assert minilm_paths[0] == baseline_recipe()
    assert digits_paths[0] == baseline_recipe()


def test_enumerate_paths_minilm_has_no_combination_its_conditions_forbid(
    minilm_paths: list[Recipe],
) -> None:
    for recipe in minilm_paths:
        assert recipe.distillation is None and recipe.pruning is None
        backend = recipe.backend.params
        if recipe.quantization is not None:
            # precision.method is declared only without quantization
            assert recipe.precision.method == "fp32"
            assert not backend.get("transformer_fusions", False)
        if recipe.backend.method == "torch_compile":
            static = recipe.quantization is not None and recipe.quantization.method in (
                "static_int8",
                "qat_int8",
            )
            # freezing, modes and the C++ wrapper are declared for (QAT) static int8 only
            assert backend["freezing"] is static
            if not static:
                assert backend["mode"] == "default" and not backend["cpp_wrapper"]
        if recipe.backend.method == "onnxruntime":
            # fixed values stay fixed: the fusions need the model's head count
            assert backend["fusion_num_heads"] == 12 and backend["flush_denormals"]
        if recipe.quantization is not None:
            # module names of the full model mean nothing on the probe
            assert recipe.quantization.params["exclude"] == []
    assert {r.precision.method for r in minilm_paths} == {"fp32", "bf16"}


def test_enumerate_paths_digits_crosses_precisions_levels_and_quantizations(
    digits_paths: list[Recipe],
) -> None:
    labels = {describe_path(r) for r in digits_paths}
    assert {"torch_eager + fp16", "torch_eager + bf16", "onnxruntime(basic) + fp16"} <= labels
    assert {"onnxruntime + static_int8", "onnxruntime + static_int8(per_channel)"} <= labels
    assert not any("torch_compile" in label for label in labels)  # not in the space
    for recipe in digits_paths:
        if recipe.quantization is not None:
            assert recipe.precision.method == "fp32"
    # 3 precisions + 2 int8 methods x 2 per_channel + NNCF's 2 presets + QAT int8 + codebook
    # + NNCF weights' 2 modes, on eager, ONNX Runtime at 2 levels and OpenVINO with and
    # without static shapes (the methods a backend does not run are refused by check(),
    # without a build)
    assert len(digits_paths) == (3 + 4 + 2 + 1 + 1 + 2) * 5
    # A QAT path trains two steps on the probe, whatever the space says: same kernels.
    qat = [r for r in digits_paths if r.quantization and r.quantization.method == "qat_int8"]
    assert qat and all(r.quantization.params["steps"] == 2 for r in qat)  # type: ignore[union-attr]


def test_enumerate_paths_sets_distillation_and_pruning_to_none_for_when_conditions() -> None:
    space = _space(
        """
        parameters:
          pruning.method: [structured]
          backend.method: [torch_eager, onnxruntime]
          quantization.method: {choices: [none, dynamic_int8], when: {pruning.method: none}}
        """
    )
    labels = [describe_path(r) for r in enumerate_paths(space)]
    assert "onnxruntime + dynamic_int8" in labels
    assert all(r.pruning is None for r in enumerate_paths(space))


def test_enumerate_paths_gives_other_fields_a_value_the_space_allows() -> None:
    space = _space(
        """
        parameters:
          backend.method: [onnxruntime]
          quantization.method: [static_int8]
          quantization.static_int8.calibration_method: [entropy, percentile]
          quantization.static_int8.calibration_samples: {low: 16, high: 64}
        """
    )
    (recipe,) = [r for r in enumerate_paths(space) if r.quantization is not None]
    params = recipe.quantization.params  # type: ignore[union-attr]
    assert params["calibration_method"] == "entropy"  # the default (minmax) is not allowed
    assert params["calibration_samples"] == 16  # the default (128) is out of range


def test_path_key_ignores_distillation_pruning_and_non_kernel_fields() -> None:
    path = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.onnxruntime", {"graph_optimization_level": "basic"}),
        quantization=make_step("quantization.static_int8", {"per_channel": True}),
    )
    candidate = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step(
            "backend.onnxruntime", {"graph_optimization_level": "basic", "fusion_num_heads": 4}
        ),
        distillation=make_step("distillation.kd", {"width": 0.5}),
        pruning=make_step("pruning.structured", {"amount": 0.3}),
        quantization=make_step(
            "quantization.static_int8",
            {"per_channel": True, "exclude": ["fc2"], "calibration_method": "entropy"},
        ),
    )
    assert path_key(candidate) == path_key(path)
    other_level = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step("backend.onnxruntime"),
        quantization=make_step("quantization.static_int8", {"per_channel": True}),
    )
    assert path_key(other_level) != path_key(path)
    assert kernel_settings(candidate)["backend"]["config"]["graph_optimization_level"] == "basic"


def test_describe_path_names_the_kernel_fields_that_differ_from_defaults() -> None:
    recipe = Recipe(
        precision=make_step("precision.fp32"),
        backend=make_step(
            "backend.torch_compile", {"mode": "max-autotune-no-cudagraphs", "freezing": True}
        ),
        quantization=make_step("quantization.static_int8", {"per_channel": True}),
    )
    assert (
        describe_path(recipe)
        == "torch_compile(max-autotune-no-cudagraphs, freezing) + static_int8(per_channel)"
    )
    assert describe_path(baseline_recipe()) == "torch_eager + fp32"
