"""The standard starting points derived from a space, the model and the host."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoopt import hardware
from autoopt.config import load_search_space
from autoopt.errors import CandidateError
from autoopt.pipeline import check_recipe, make_context
from autoopt.resolve import recipe_from_params
from autoopt.search.points import enumerate_points, expand, recipe_key
from autoopt.search.starting import HostFacts, PathVerdict, derive, teacher_depth
from autoopt.selftest import path_key

SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


def _refusal(workload):
    """This host's precheck for ``workload``, as the controller runs it before queueing a
    point."""

    def refuse(recipe) -> str:
        try:
            check_recipe(recipe, make_context(recipe, workload, hardware.current()))
        except CandidateError as e:
            return str(e)
        return ""

    return refuse


@pytest.fixture(scope="module")
def refusal(workload):
    return _refusal(workload)


@pytest.fixture(scope="module")
def minilm_refusal():
    """The MiniLM space's points checked against MiniLM (its students need its layout)."""
    from autoopt.workloads import load_workload

    return _refusal(load_workload("minilm"))


def _names(found) -> dict[str, str]:
    return {p.name: p.recipe.describe() for p in found.points}


def test_digits_points_cover_backends_int8_reduced_precision_and_a_student(refusal) -> None:
    space = load_search_space(SPACES / "digits_cnn.yaml")
    host = HostFacts.of(hardware.current(), "cpu")
    found = derive(space, host, depth=None, refusal=refusal)
    names = _names(found)
    assert names["teacher@onnxruntime"] == "fp32 @ onnxruntime"
    assert (
        names["dynamic_int8@torch_eager"] == "dynamic_int8(per_channel=True) > fp32 @ torch_eager"
    )
    assert names["dynamic_int8@onnxruntime"].startswith("dynamic_int8(per_channel=True) > fp32")
    assert names["static_int8@onnxruntime"].startswith("static_int8(per_channel=True) > fp32")
    # Half the teacher's width, of the space's 0.25/0.5/0.75, with the int8 setting preferred
    # without self-test figures (static int8 on a compiled backend).
    student = next(p for p in found.points if p.name == "student-width-0.5")
    assert student.recipe.distillation is not None
    assert student.recipe.distillation.params["width"] == 0.5
    assert (
        student.recipe.quantization is not None and student.recipe.backend.method != "torch_eager"
    )
    assert found.points[-1] is student  # students (minutes of training) come last
    # Static int8 on eager is refused by this host's precheck, with the reason.
    dropped = dict(found.dropped)
    assert (
        "static_int8@torch_eager" in dropped and "Inductor" in dropped["static_int8@torch_eager"]
    )
    assert "bf16 kernels" in dropped["bf16@onnxruntime"]
    # Every point is one the space can express, once each, and not the baseline.
    keys = {recipe_key(p.recipe) for p in found.points}
    assert len(keys) == len(found.points)
    assert all(
        recipe_key(recipe_from_params(p.params, space)) == recipe_key(p.recipe)
        for p in found.points
    )
    assert "fp32 @ torch_eager" not in names.values()


def test_reduced_precision_point_follows_the_host_and_is_refused_where_it_cannot_run(
    refusal,
) -> None:
    space = load_search_space(SPACES / "digits_cnn.yaml")
    here = hardware.current()
    found = derive(space, HostFacts.of(here, "cpu"), refusal=refusal)
    if here.native_bf16:
        assert "bf16@torch_eager" in _names(found)
    else:
        assert "bf16@torch_eager" not in _names(found)
    # Asked for all the same (a target that claims native bf16), this host's own precheck
    # decides: refused with its reason where the CPU lacks bf16, kept where it has it.
    claimed = derive(space, HostFacts("cpu", native_bf16=True), refusal=refusal)
    if here.native_bf16:
        assert "bf16@torch_eager" in _names(claimed)
    else:
        reason = dict(claimed.dropped)["bf16@torch_eager"]
        assert "no native bf16" in reason, reason
    # fp16: declared by the space; a point only where this CPU computes it natively.
    assert ("fp16@torch_eager" in _names(found)) == here.native_fp16


def test_minilm_points_include_compile_int8_and_a_half_depth_student(minilm_refusal) -> None:
    space = load_search_space(SPACES / "minilm.yaml")
    found = derive(space, HostFacts.of(hardware.current(), "cpu"), depth=6, refusal=minilm_refusal)
    names = _names(found)
    assert {"teacher@torch_compile", "teacher@onnxruntime"} <= set(names)
    assert names["static_int8@torch_compile"].startswith(
        "static_int8(per_channel=True,smooth_quant_alpha=0.8) > fp32"
    )  # the space fixes SmoothQuant on torch_compile
    assert "freezing=True" in names["static_int8@torch_compile"]  # and freezing
    assert "op_types=Gemm+MatMul" in names["dynamic_int8@onnxruntime"]
    student = next(p for p in found.points if p.name.startswith("student"))
    assert student.name == "student-3-layers"
    kd = student.recipe.distillation
    assert kd is not None and kd.params["layers"] == 3 and kd.params["steps"] == 3000
    assert student.recipe.quantization is not None
    assert student.recipe.quantization.method == "static_int8"
    assert student.recipe.backend.method == "torch_compile"


def test_self_test_results_choose_the_kernel_settings_and_drop_what_does_not_help(
    minilm_refusal,
) -> None:
    space = load_search_space(SPACES / "minilm.yaml")
    variants = {}
    for params in expand(
        space,
        {
            "distillation.method": "none",
            "pruning.method": "none",
            "quantization.method": "static_int8",
            "backend.method": "torch_compile",
        },
        vary=lambda name, _spec: name.startswith("backend.torch_compile."),
    ):
        recipe = recipe_from_params(params, space)
        variants[(recipe.backend.params["mode"], recipe.backend.params["cpp_wrapper"])] = recipe
    assert len(variants) == 4
    ort_teacher = recipe_from_params(
        {
            "distillation.method": "none",
            "pruning.method": "none",
            "quantization.method": "none",
            "precision.method": "fp32",
            "backend.method": "onnxruntime",
            "backend.onnxruntime.transformer_fusions": False,
        },
        space,
    )
    paths = {
        # The EPYC case: max-autotune computes garbage here, so the fastest passing path wins.
        path_key(variants[("max-autotune-no-cudagraphs", False)]): PathVerdict("fail", 4.0),
        path_key(variants[("max-autotune-no-cudagraphs", True)]): PathVerdict("fail", 4.1),
        path_key(variants[("default", False)]): PathVerdict("pass", 2.5),
        path_key(variants[("default", True)]): PathVerdict("pass", 2.9),
        # ONNX Runtime without fusions runs slower than eager on the probe: no help.
        path_key(ort_teacher): PathVerdict("pass", 0.9),
    }
    host = HostFacts("cpu", native_bf16=False, paths=paths)
    found = derive(space, host, depth=6, refusal=minilm_refusal)
    static = next(p for p in found.points if p.name == "static_int8@torch_compile")
    assert static.recipe.backend.params["mode"] == "default"
    assert static.recipe.backend.params["cpp_wrapper"] is True
    # The fused ONNX Runtime teacher has no figure: it is kept, the unfused one is not.
    ort = next(p for p in found.points if p.name == "teacher@onnxruntime")
    assert ort.recipe.backend.params["transformer_fusions"] is True
    # The student takes the fastest int8 path that passed.
    student = next(p for p in found.points if p.name.startswith("student"))
    assert student.recipe.backend.params == static.recipe.backend.params


def test_a_space_without_distillation_or_other_backends_derives_only_what_it_can_express(
    refusal,
) -> None:
    from autoopt.config import SearchSpace

    space = SearchSpace.model_validate(
        {
            "parameters": {
                "quantization.method": ["none", "dynamic_int8"],
                "quantization.dynamic_int8.per_channel": False,  # fixed: kept as declared
                "precision.method": "fp32",
                "backend.method": "torch_eager",
            }
        }
    )
    found = derive(space, HostFacts("cpu"), refusal=refusal)
    assert _names(found) == {"dynamic_int8@torch_eager": "dynamic_int8 > fp32 @ torch_eager"}


def test_teacher_depth_counts_the_repeated_block(workload) -> None:
    from autoopt.testing import tiny_bert

    assert teacher_depth(workload.model) is None  # the digits CNN repeats no block
    assert teacher_depth(tiny_bert(layers=3).model) == 3


def test_enumerate_points_lists_each_candidate_of_a_finite_space_once() -> None:
    from autoopt.config import SearchSpace

    space = SearchSpace.model_validate(
        {
            "parameters": {
                "pruning.method": ["none", "structured"],
                "pruning.structured.amount": {"low": 0.2, "high": 0.4, "step": 0.2},
                "quantization.method": ["none", "dynamic_int8"],
                "quantization.dynamic_int8.per_channel": [False, True],
                "backend.method": ["torch_eager", "onnxruntime"],
            }
        }
    )
    points = enumerate_points(space)
    # (none + 2 amounts) x (none + 2 int8) x 2 backends
    assert len(points) == 3 * 3 * 2
    assert len({recipe_key(recipe_from_params(p, space)) for p in points}) == len(points)


def test_a_student_is_not_dropped_for_its_path_timing_like_fp32_eager(refusal) -> None:
    from autoopt.config import SearchSpace

    space = SearchSpace.model_validate(
        {
            "parameters": {
                "distillation.method": ["kd"],
                "distillation.kd.width": [0.25, 0.5],
                "quantization.method": ["none"],
                "precision.method": "fp32",
                "backend.method": ["torch_eager"],
            }
        }
    )
    eager = recipe_from_params(
        {
            "distillation.method": "none",
            "quantization.method": "none",
            "precision.method": "fp32",
            "backend.method": "torch_eager",
        },
        space,
    )
    # The self-test times fp32 eager against itself: noise around 1x, which says nothing of
    # a student (it wins by its size).
    host = HostFacts("cpu", paths={path_key(eager): PathVerdict("pass", 0.97)})
    found = derive(space, host, refusal=refusal)
    assert _names(found) == {"student-width-0.5": found.points[0].recipe.describe()}
    assert found.dropped == []
