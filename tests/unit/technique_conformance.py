"""The conformance suite every technique method passes: subclass it once per method.

A subclass names the method (``key``), the config to build with, the backend the recipe runs
on (which decides whether the input is the PyTorch teacher or its ONNX export) and how much
evaluation accuracy the method may cost. The suite then checks the registration, the config
contract (round trip, unknown keys, frozen), purity of ``apply``, the output shape and the
accuracy against the teacher.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from pydantic import ValidationError

import autoopt.hardware
from autoopt import registry
from autoopt.artifacts import Artifact, OnnxArtifact, OpenVinoArtifact, TorchArtifact
from autoopt.backends.onnxruntime import OnnxRuntimeRunner
from autoopt.backends.openvino import OpenVinoRunner
from autoopt.backends.torch_eager import TorchRunner
from autoopt.hardware import Hardware
from autoopt.recipe import Recipe, Step
from autoopt.techniques import Context, MethodConfig, Technique
from autoopt.workloads import Split, Workload

BACKEND_KINDS = {
    "backend.torch_eager": "torch",
    "backend.torch_compile": "torch",
    "backend.onnxruntime": "onnx",
    "backend.openvino": "openvino",
}


def technique_class(key: str) -> type[Technique]:
    """The registered technique class (the registry also holds backends)."""
    cls = registry.get(key)
    assert issubclass(cls, Technique), f"{key} is not a technique"
    return cls


def make_context(
    workload: Workload,
    workdir: Path,
    key: str,
    config: dict[str, Any] | None = None,
    *,
    backend: str = "backend.torch_eager",
    backend_config: dict[str, Any] | None = None,
    precision: str = "precision.fp32",
    others: dict[str, tuple[str, dict[str, Any]]] | None = None,
    hardware: Hardware | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> Context:
    """A context whose recipe holds ``key`` (with ``config``) in its family's slot."""
    steps: dict[str, Step] = {"precision": Step.make(precision)}
    for family, (other_key, other_config) in (others or {}).items():
        steps[family] = Step.make(other_key, other_config)
    steps[key.split(".", 1)[0]] = Step.make(key, config)
    recipe = Recipe(backend=Step.make(backend, backend_config), **steps)  # type: ignore[arg-type]
    return Context(
        workload=workload,
        recipe=recipe,
        hardware=hardware or autoopt.hardware.current(),
        workdir=workdir,
        seed=seed,
        device=device,
    )


def predict(artifact: Artifact, split: Split, batch_size: int = 256) -> np.ndarray:
    """Outputs over a split, run the way the backends run them (inputs cast to the model's
    dtype on PyTorch, which ``predict_torch`` does not do for fp16/bf16 models)."""
    if isinstance(artifact, OnnxArtifact):
        runner: Any = OnnxRuntimeRunner(str(artifact.path), "all", threads=2)
    elif isinstance(artifact, OpenVinoArtifact):
        runner = OpenVinoRunner(artifact, threads=2)
    else:
        runner = TorchRunner(artifact.model, threads=torch.get_num_threads())
    return np.concatenate([runner.run(inputs) for inputs, _ in split.batches(batch_size)])


def accuracy(artifact: Artifact, split: Split) -> float:
    return float(np.mean(predict(artifact, split).argmax(-1) == split.targets))


def fingerprint(artifact: Artifact) -> Any:
    if isinstance(artifact, OnnxArtifact):
        return hashlib.sha256(artifact.path.read_bytes()).hexdigest()
    if isinstance(artifact, OpenVinoArtifact):
        files = artifact.path.read_bytes() + artifact.weights.read_bytes()
        return f"{artifact.inference_precision}:{hashlib.sha256(files).hexdigest()}"
    return {k: v.detach().clone() for k, v in artifact.model.state_dict().items()}


def same_fingerprint(a: Any, b: Any) -> bool:
    if isinstance(a, str):
        return a == b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@dataclass
class Built:
    technique: Technique
    config: MethodConfig
    ctx: Context
    source: Artifact
    source_before: Any
    output: Artifact


class TechniqueConformance:
    key: ClassVar[str]
    config: ClassVar[dict[str, Any]] = {}
    backend: ClassVar[str] = "backend.torch_eager"
    #: Evaluation accuracy the method may lose against the teacher (absolute).
    accuracy_tolerance: ClassVar[float] = 0.02

    @property
    def input_kind(self) -> str:
        return BACKEND_KINDS[self.backend]

    @pytest.fixture(scope="class")
    def built(
        self,
        workload: Workload,
        teacher_onnx: OnnxArtifact,
        teacher_openvino: OpenVinoArtifact,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Built:
        ctx = make_context(
            workload,
            tmp_path_factory.mktemp("build"),
            self.key,
            self.config,
            backend=self.backend,
        )
        technique = technique_class(self.key)()
        config = technique.Config(**self.config)
        source: Artifact
        if self.input_kind == "onnx":
            source = teacher_onnx
        elif self.input_kind == "openvino":
            source = teacher_openvino
        else:
            # A copy, so that a technique that mutates its input cannot corrupt other tests.
            source = TorchArtifact(copy.deepcopy(workload.model))
        before = fingerprint(source)
        output = technique.apply(source, config, ctx)
        return Built(technique, config, ctx, source, before, output)

    def test_registry_returns_the_method_for_its_key(self) -> None:
        cls = technique_class(self.key)
        assert cls.key == self.key
        assert cls.family == self.key.split(".", 1)[0]
        assert self.input_kind in cls.accepts
        assert issubclass(cls.Config, MethodConfig)

    def test_config_round_trips(self) -> None:
        cls = technique_class(self.key).Config
        config = cls(**self.config)
        assert cls(**config.model_dump()) == config
        assert cls.model_validate(config.model_dump(mode="json")) == config
        assert Step.make(self.key, self.config).parsed() == config

    def test_config_rejects_unknown_key(self) -> None:
        with pytest.raises(ValidationError, match="extra"):
            technique_class(self.key).Config.model_validate({**self.config, "no_such_field": 1})

    def test_config_is_frozen(self) -> None:
        config = technique_class(self.key).Config(**self.config)
        fields = list(type(config).model_fields)
        if fields:
            with pytest.raises(ValidationError, match="frozen"):
                setattr(config, fields[0], getattr(config, fields[0]))

    def host_refusal(self, hardware: Hardware) -> str | None:
        """What the check's reason must name on a host that lacks something this method needs
        (a CPU feature), or None where the host has it: every host runs the suite."""
        return None

    def test_check_accepts_the_recipe_where_the_host_runs_it(self, built: Built) -> None:
        reason = built.technique.check(built.config, built.ctx)
        expected = self.host_refusal(built.ctx.hardware)
        if expected is None:
            assert reason is None
        else:
            assert reason is not None and expected in reason, reason

    def test_apply_leaves_its_input_unchanged(self, built: Built) -> None:
        assert same_fingerprint(built.source_before, fingerprint(built.source))

    def test_apply_output_has_the_teachers_shape(self, built: Built, workload: Workload) -> None:
        example = Split(workload.example_inputs(4))
        teacher = predict(TorchArtifact(workload.model), example)
        out = predict(built.output, example)
        assert out.shape == teacher.shape
        assert np.isfinite(out).all()

    def test_apply_accuracy_is_within_tolerance_of_the_teacher(
        self, built: Built, workload: Workload, teacher_accuracy: float
    ) -> None:
        acc = accuracy(built.output, workload.evaluation)
        assert acc >= teacher_accuracy - self.accuracy_tolerance, (
            f"{self.key}: accuracy {acc:.4f} vs teacher {teacher_accuracy:.4f}"
        )
