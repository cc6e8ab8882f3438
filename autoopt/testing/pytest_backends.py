"""The conformance suite every backend passes: subclass it once per configuration.

::

    from autoopt.testing import BackendTestSuite

    class TestMyRuntime(BackendTestSuite):
        key = "backend.my_runtime"
        config = {"optimization": "all"}
        tolerance = 1e-4

The suite checks the registration, the config contract, that ``unavailable_reason`` is None or
one sentence, and, where the backend is available: that ``compile`` gives a runner whose
``run`` matches the fp32 teacher (PyTorch eager) within ``tolerance`` (relative to the
outputs' largest magnitude), whose ``timed`` returns a call that runs the batch, and whose
``describe`` reports at least ``dtype`` and ``threads``. A backend unavailable here skips those
with its reason.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import numpy as np
import pytest

from autoopt import plugins
from autoopt.artifacts import Artifact, TorchArtifact
from autoopt.plugins import Runner
from autoopt.testing._build import (
    fingerprint,
    make_context,
    predict,
    same_fingerprint,
    teacher_onnx,
)
from autoopt.testing._config import ConfigContract
from autoopt.workloads import Split, Workload, load_workload


class BackendTestSuite(ConfigContract):
    key: ClassVar[str]
    config: ClassVar[dict[str, Any]] = {}
    #: A bundled workload or a ``package.module:function`` entry point, with its options.
    workload_name: ClassVar[str] = "digits_cnn"
    workload_options: ClassVar[dict[str, Any]] = {}
    #: Largest difference from the teacher's outputs, relative to their largest magnitude.
    tolerance: ClassVar[float] = 1e-4
    threads: ClassVar[int] = 1
    batch_size: ClassVar[int] = 8

    @pytest.fixture(scope="class")
    def workload(self) -> Workload:
        return load_workload(self.workload_name, self.workload_options)

    @pytest.fixture(scope="class")
    def batch(self, workload: Workload) -> Split:
        return workload.evaluation.take(self.batch_size)

    @pytest.fixture(scope="class")
    def artifact(self, workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Artifact:
        """The fp32 teacher in the form this backend serves."""
        if plugins.get_backend(self.key).artifact_kind == "onnx":
            return teacher_onnx(workload, tmp_path_factory.mktemp("teacher"))
        return TorchArtifact(copy.deepcopy(workload.model))

    @pytest.fixture(scope="class")
    def pristine(self, artifact: Artifact) -> Any:
        """The artifact's fingerprint before anything compiled it."""
        return fingerprint(artifact)

    @pytest.fixture(scope="class")
    def runner(self, artifact: Artifact, pristine: Any) -> Runner:
        cls = plugins.get_backend(self.key)
        reason = cls.unavailable_reason()
        if reason:
            pytest.skip(f"{self.key} cannot run here: {reason}")
        return cls().compile(artifact, cls.Config(**self.config), self.threads)

    def test_registry_returns_the_backend_for_its_key(self) -> None:
        cls = plugins.get_backend(self.key)
        assert cls.key == self.key and self.key.startswith("backend.")
        assert cls.artifact_kind in ("torch", "onnx")

    def test_unavailable_reason_is_none_or_one_sentence(self) -> None:
        reason = plugins.get_backend(self.key).unavailable_reason()
        if reason is not None:
            assert isinstance(reason, str) and reason == reason.strip(), repr(reason)
            assert "\n" not in reason and len(reason.split()) >= 3, repr(reason)

    def test_check_accepts_the_fp32_teacher_on_a_cpu_target(
        self, workload: Workload, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        cls = plugins.get_backend(self.key)
        ctx = make_context(
            workload,
            tmp_path_factory.mktemp("check"),
            "precision.fp32",
            backend=self.key,
            backend_config=self.config,
        )
        assert cls().check(cls.Config(**self.config), ctx) is None

    def test_run_matches_the_fp32_reference(
        self, runner: Runner, workload: Workload, batch: Split
    ) -> None:
        reference = predict(TorchArtifact(workload.model), batch)
        out = runner.run(batch.inputs)
        assert out.dtype == np.float32 and out.shape == reference.shape
        scale = float(np.abs(reference).max()) or 1.0
        assert float(np.abs(out - reference).max()) <= self.tolerance * scale

    def test_timed_returns_a_call_that_runs_the_batch(self, runner: Runner, batch: Split) -> None:
        call = runner.timed(batch.inputs)
        assert callable(call)
        call()
        call()

    def test_describe_reports_dtype_and_threads(self, runner: Runner) -> None:
        info = runner.describe()
        assert isinstance(info.get("dtype"), str) and info["dtype"]
        assert info.get("threads") == self.threads

    def test_compile_and_run_leave_the_artifact_unchanged(
        self, artifact: Artifact, pristine: Any, runner: Runner, batch: Split
    ) -> None:
        runner.run(batch.inputs)
        assert same_fingerprint(pristine, fingerprint(artifact))
