"""The conformance suite every technique method passes: subclass it once per configuration.

::

    from autoopt.testing import TechniqueTestSuite

    class TestScalePrecision(TechniqueTestSuite):
        key = "precision.scale"
        config = {"factor": 0.5}
        backend = "backend.onnxruntime"       # the input is then the teacher's ONNX export
        workload_name = "mypkg.workload:load"  # any workload; logits or embedding outputs
        tolerance = 0.02

The suite checks the registration, the config contract (JSON round trip, unknown keys refused,
frozen), that ``check`` accepts the recipe or refuses it with this host's reason, that ``apply``
leaves its input unchanged, and that its output has the teacher's shape and stays within
``tolerance`` of the teacher: top-1 accuracy for logits workloads (absolute points), mean
cosine similarity to the teacher's embeddings for embedding workloads (at least
``1 - tolerance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pytest

from autoopt import plugins
from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.hardware import Hardware
from autoopt.plugins import Context, MethodConfig, Technique
from autoopt.testing._build import (
    fingerprint,
    make_context,
    predict,
    same_fingerprint,
    score,
    teacher_artifact,
)
from autoopt.testing._config import ConfigContract
from autoopt.workloads import Split, Workload, load_workload


@dataclass
class Built:
    """One ``apply`` of the method under test, with what it was given."""

    technique: Technique[Any]
    config: MethodConfig
    ctx: Context
    source: Artifact
    source_before: Any
    output: Artifact


class TechniqueTestSuite(ConfigContract):
    key: ClassVar[str]
    config: ClassVar[dict[str, Any]] = {}
    #: The recipe's backend: it decides whether the input is the teacher or its ONNX export
    #: (or IR), as the pipeline decides: the module for a method that accepts only PyTorch.
    backend: ClassVar[str] = "backend.torch_eager"
    backend_config: ClassVar[dict[str, Any]] = {}
    #: Steps of other families in the recipe: ``{family: (key, config)}``.
    others: ClassVar[dict[str, tuple[str, dict[str, Any]]]] = {}
    #: A bundled workload or a ``package.module:function`` entry point, with its options.
    workload_name: ClassVar[str] = "digits_cnn"
    workload_options: ClassVar[dict[str, Any]] = {}
    #: What the method may cost against the teacher on the evaluation split (see above).
    tolerance: ClassVar[float] = 0.02

    def host_refusal(self, hardware: Hardware) -> str | None:
        """What ``check``'s reason must name on a host that lacks something this method needs
        (a CPU feature), or None where the host has it: every host runs the suite."""
        return None

    @pytest.fixture(scope="class")
    def workload(self) -> Workload:
        return load_workload(self.workload_name, self.workload_options)

    @pytest.fixture(scope="class")
    def teacher_outputs(self, workload: Workload) -> np.ndarray:
        return predict(TorchArtifact(workload.model), workload.evaluation)

    @pytest.fixture(scope="class")
    def built(self, workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Built:
        workdir = tmp_path_factory.mktemp("build")
        ctx = make_context(
            workload,
            workdir,
            self.key,
            self.config,
            backend=self.backend,
            backend_config=self.backend_config,
            others=self.others,
        )
        technique = plugins.get_technique(self.key)()
        config = technique.Config(**self.config)
        # What the pipeline hands the method: the backend's form where the method takes it,
        # else the PyTorch module (a method that converts the model itself, as QAT does).
        kind = ctx.backend_kind
        if kind not in technique.accepts or technique.needs_torch(config):
            kind = "torch"
        source = teacher_artifact(kind, workload, workdir)
        before = fingerprint(source)
        output = technique.apply(source, config, ctx)
        return Built(technique, config, ctx, source, before, output)

    def test_registry_returns_the_method_for_its_key(self, built: Built) -> None:
        cls = plugins.get_technique(self.key)
        assert cls.key == self.key
        assert cls.family == self.key.split(".", 1)[0]
        assert built.ctx.backend_kind in cls.accepts or "torch" in cls.accepts

    def test_check_accepts_the_recipe_or_refuses_with_the_hosts_reason(self, built: Built) -> None:
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

    def test_apply_output_is_within_tolerance_of_the_teacher(
        self, built: Built, workload: Workload, teacher_outputs: np.ndarray
    ) -> None:
        split, kind = workload.evaluation, workload.output_kind
        got = score(predict(built.output, split), teacher_outputs, split, kind)
        reference = score(teacher_outputs, teacher_outputs, split, kind)
        assert got >= reference - self.tolerance, (
            f"{self.key}: {'cosine' if kind == 'embedding' else 'accuracy'} {got:.4f} vs "
            f"teacher {reference:.4f}"
        )
