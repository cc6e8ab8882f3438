"""The plugin interface, the registry and the pure recipe that plugins and stored studies use."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

import autoopt.plugins
from autoopt import plugins
from autoopt.artifacts import Artifact
from autoopt.errors import ConfigError
from autoopt.plugins import Context, MethodConfig, Technique
from autoopt.recipe import Recipe
from autoopt.resolve import make_step, recipe_from_dict

#: Stored recipes (as an old study or a bundle holds them) and the digests the code before the
#: plugin refactor computed for them: stage-cache keys and study records depend on these.
STORED = [
    (
        {"precision": {"key": "precision.fp32"}, "backend": {"key": "backend.torch_eager"}},
        "b16514b208603abb",
    ),
    (
        {
            "distillation": {
                "key": "distillation.kd",
                "config": {"width": 0.25, "steps": 100, "keep": [0, 5]},
            },
            "pruning": {
                "key": "pruning.structured",
                "config": {"amount": 0.3, "recovery_steps": 50},
            },
            "quantization": {
                "key": "quantization.dynamic_int8",
                "config": {"exclude": ["fc2", "fc1", "fc2"], "per_channel": True},
            },
            "precision": {"key": "precision.fp32", "config": {}},
            "backend": {
                "key": "backend.onnxruntime",
                "config": {"graph_optimization_level": "extended", "flush_denormals": True},
            },
        },
        "8835d3227e337f0f",
    ),
    (
        {
            "quantization": {
                "key": "quantization.static_int8",
                "config": {
                    "per_channel": True,
                    "op_types": ["MatMul", "Conv"],
                    "calibration_method": "histogram",
                },
            },
            "precision": {"key": "precision.fp32"},
            "backend": {"key": "backend.torch_compile", "config": {"freezing": True}},
        },
        "871b2c4a7906f7f0",
    ),
    (
        {
            "pruning": {
                "key": "pruning.attention_ffn",
                "config": {"heads": 0.5, "ffn": 0.25, "recovery_steps": 1},
            },
            "precision": {"key": "precision.bf16"},
            "backend": {
                "key": "backend.torch_compile",
                "config": {"mode": "max-autotune-no-cudagraphs"},
            },
        },
        "69aaa44d7073398e",
    ),
    (
        {
            "pruning": {"key": "pruning.unstructured", "config": {"amount": 0, "scope": "global"}},
            "precision": {
                "key": "precision.fp8",
                "config": {"exclude": ["bert.encoder.layer.*.output.dense"]},
            },
            "backend": {"key": "backend.torch_eager"},
        },
        "214bc90c396dc958",
    ),
]


def test_plugins_package_exports_the_interface() -> None:
    assert sorted(autoopt.plugins.__all__) == sorted(
        [
            "DEFAULT_METHODS",
            "FAMILIES",
            "MODEL_FAMILIES",
            "NONE_METHOD",
            "OPTIONAL_FAMILIES",
            "Backend",
            "Context",
            "Family",
            "MethodConfig",
            "Runner",
            "Technique",
            "TechniqueFamily",
            "get",
            "get_backend",
            "get_technique",
            "method_keys",
            "method_names",
            "register",
        ]
    )


def test_recipe_holds_one_step_per_declared_family() -> None:
    assert {f.name for f in dataclasses.fields(Recipe)} == set(plugins.FAMILIES)
    assert set(plugins.OPTIONAL_FAMILIES) | {"precision", "backend"} == set(plugins.FAMILIES)
    assert set(plugins.MODEL_FAMILIES) <= set(plugins.OPTIONAL_FAMILIES)


# Digests computed on the commit before the plugin refactor; the torch_compile ones again when
# its config gained ``inplace_buffers`` (a new field with a default changes every recipe on
# that backend: resumed studies read it back with the default, so their repeats still match),
# the kd one when kd gained ``attention_weight``, ``schedule`` and ``warmup_steps``, and the
# static int8 one when it gained ``smooth_quant_alpha``.
@pytest.mark.parametrize(("stored", "digest"), STORED)
def test_recipe_from_dict_digest_is_unchanged_for_stored_recipes(
    stored: dict[str, Any], digest: str
) -> None:
    recipe = recipe_from_dict(stored)
    assert recipe.digest() == digest
    again = recipe_from_dict(json.loads(recipe.to_json()))
    assert again == recipe and hash(again) == hash(recipe)
    assert again.to_json() == recipe.to_json()


def test_step_holds_the_validated_config_with_defaults_filled_in() -> None:
    step = make_step("quantization.dynamic_int8", {"exclude": ["fc2", "fc1", "fc2"]})
    assert type(step.config).__name__ == "DynamicInt8Config"
    assert step.config.exclude == ["fc1", "fc2"]  # type: ignore[attr-defined]
    assert step.params["weight_type"] == "QInt8"
    assert list(step.params) == sorted(step.params)
    with pytest.raises(ConfigError, match=r"quantization.dynamic_int8.per_channel"):
        make_step("quantization.dynamic_int8", {"per_channel": "sometimes"})


def test_equal_configs_hash_equally_even_with_list_fields() -> None:
    a = make_step("quantization.static_int8", {"exclude": ["fc2", "fc1"]}).config
    b = make_step("quantization.static_int8", {"exclude": ["fc1", "fc2", "fc1"]}).config
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1


class _ToyConfig(MethodConfig):
    scale: float = 1.0


def test_register_refuses_a_key_outside_its_family() -> None:
    class Misnamed(Technique[_ToyConfig]):
        key = "pruning.toy"
        family = "quantization"
        Config = _ToyConfig

        def apply(self, artifact: Artifact, config: _ToyConfig, ctx: Context) -> Artifact:
            return artifact

    with pytest.raises(ValueError, match="quantization.<name>"):
        plugins.register(Misnamed)
    assert "pruning.toy" not in plugins.method_keys("pruning")


def test_get_technique_refuses_a_backend_key_and_names_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="backend, not a technique"):
        plugins.get_technique("backend.torch_eager")
    with pytest.raises(ConfigError, match=r"allowed: .*precision.fp32"):
        plugins.get("precision.fp64")
