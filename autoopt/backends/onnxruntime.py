"""ONNX Runtime on the CPU execution provider (CUDA when present and asked for)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from autoopt.backends._base import Backend, Runner
from autoopt.registry import register
from autoopt.techniques._base import Context, MethodConfig

if TYPE_CHECKING:
    import onnxruntime as ort

    from autoopt.artifacts import Artifact

_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class OnnxRuntimeConfig(MethodConfig):
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"


def session_options(level: str, threads: int) -> ort.SessionOptions:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    # Ray pins PyTorch to the task's CPUs but not ONNX Runtime: always fix the threads.
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


class OnnxRuntimeRunner(Runner):
    def __init__(self, path: str, level: str, threads: int) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            path, sess_options=session_options(level, threads), providers=["CPUExecutionProvider"]
        )
        self.inputs = [
            (i.name, _NP_TYPES.get(i.type, np.float32)) for i in self.session.get_inputs()
        ]
        self.level, self.threads, self.path = level, threads, path

    def _feed(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return {
            name: np.ascontiguousarray(x, dtype=dtype)
            for (name, dtype), x in zip(self.inputs, inputs, strict=True)
        }

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.session.run(None, self._feed(inputs))[0], dtype=np.float32)

    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        feed, session = self._feed(inputs), self.session
        return lambda: session.run(None, feed)

    def describe(self) -> dict[str, Any]:
        import onnx

        graph = onnx.load(self.path, load_external_data=False).graph
        ops = Counter(n.op_type for n in graph.node)
        return {
            "backend": "onnxruntime",
            "providers": self.session.get_providers(),
            "graph_optimization_level": self.level,
            "threads": self.threads,
            "op_counts": dict(sorted(ops.items())),
        }


@register
class OnnxRuntimeBackend(Backend):
    key = "backend.onnxruntime"
    Config = OnnxRuntimeConfig
    artifact_kind = "onnx"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            return f"onnxruntime is not installed: {e}"
        return None

    def check(self, config: MethodConfig, ctx: Context) -> str | None:
        if ctx.recipe.precision.method == "bf16":
            return (
                "onnxruntime's CPUExecutionProvider has no bf16 kernels for Conv/MatMul/Gemm; "
                "use fp32/fp16 on onnxruntime or bf16 on a PyTorch backend"
            )
        return None

    def compile(self, artifact: Artifact, config: MethodConfig, threads: int) -> Runner:
        assert isinstance(config, OnnxRuntimeConfig)  # noqa: S101 - registry guarantees it
        return OnnxRuntimeRunner(str(artifact.path), config.graph_optimization_level, threads)  # type: ignore[union-attr]
