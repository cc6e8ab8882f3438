"""ONNX Runtime on the CPU execution provider (CUDA when present and asked for)."""

from __future__ import annotations

import atexit
import functools
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field

from autoopt.artifacts import OnnxArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Backend, MethodConfig, Runner, register
from autoopt.quiet import logger_level

if TYPE_CHECKING:
    import onnxruntime as ort

    from autoopt.artifacts import Artifact
    from autoopt.plugins import Context

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
    #: Apply ONNX Runtime's offline transformer fusions (Attention, SkipLayerNorm, BiasGelu,
    #: EmbedLayerNorm) before the session: what Optimum's and Olive's BERT recipes do. The
    #: optimizer's model type, heads and width come from the model's layout
    #: (:mod:`autoopt.layouts`), recorded in the exported graph.
    transformer_fusions: bool = False
    #: Attention heads and hidden size for the fusions, overriding the layout's (0: the
    #: layout's; ONNX Runtime's own detection fails on graphs that reshape with -1, as Hugging
    #: Face's BERT does).
    fusion_num_heads: int = Field(default=0, ge=0)
    fusion_hidden_size: int = Field(default=0, ge=0)
    #: Flush denormal floats to zero (FTZ/DAZ). A masked attention score's exp() underflows
    #: into denormals, which x86 computes in slow microcode: on MiniLM with a padded sentence,
    #: Softmax took 6 of 18 ms without it. ONNX Runtime's own option covers its pool threads
    #: only, and a 1-thread session runs on the caller's: the runner sets the caller's too.
    flush_denormals: bool = False


def session_options(level: str, threads: int, flush_denormals: bool = False) -> ort.SessionOptions:
    import onnxruntime as ort

    so = ort.SessionOptions()
    if flush_denormals:
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[level])
    # Ray pins PyTorch to the task's CPUs but not ONNX Runtime: always fix the threads.
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return so


class OnnxRuntimeRunner(Runner):
    def __init__(self, path: str, level: str, threads: int, flush_denormals: bool = False) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(
            path,
            sess_options=session_options(level, threads, flush_denormals),
            providers=["CPUExecutionProvider"],
        )
        self.inputs = [
            (i.name, _NP_TYPES.get(i.type, np.float32)) for i in self.session.get_inputs()
        ]
        self.level, self.threads, self.path = level, threads, path
        self.flush_denormals = flush_denormals

    def _feed(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return {
            name: np.ascontiguousarray(x, dtype=dtype)
            for (name, dtype), x in zip(self.inputs, inputs, strict=True)
        }

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(self.timed(inputs)()[0], dtype=np.float32)

    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        feed, session = self._feed(inputs), self.session
        if not self.flush_denormals:
            return lambda: session.run(None, feed)
        import torch

        # FTZ/DAZ is the calling thread's state (x86's MXCSR; PyTorch sets it): on for each
        # call, on whichever thread makes it, and off again after, the process default, so
        # that the caller's own float arithmetic is left IEEE.
        flush = torch.set_flush_denormal

        def call() -> Any:
            flush(True)
            try:
                return session.run(None, feed)
            finally:
                flush(False)

        return call

    def describe(self) -> dict[str, Any]:
        import onnx

        graph = onnx.load(self.path, load_external_data=False).graph
        ops = Counter(n.op_type for n in graph.node)
        # The float type the weights are stored in: float16 once precision.fp16 converted the
        # graph (its inputs and outputs stay float32).
        weights = {i.data_type for i in graph.initializer}
        return {
            "backend": "onnxruntime",
            "dtype": "float16" if onnx.TensorProto.FLOAT16 in weights else "float32",
            "providers": self.session.get_providers(),
            "graph_optimization_level": self.level,
            "threads": self.threads,
            "flush_denormals": self.flush_denormals,
            "op_counts": dict(sorted(ops.items())),
        }


@register
class OnnxRuntimeBackend(Backend[OnnxRuntimeConfig]):
    key = "backend.onnxruntime"
    Config = OnnxRuntimeConfig
    artifact_kind = "onnx"
    kernel_fields = ("graph_optimization_level", "transformer_fusions", "flush_denormals")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            return f"onnxruntime is not installed: {e}"
        return None

    def check(self, config: OnnxRuntimeConfig, ctx: Context) -> str | None:
        if ctx.device != "cpu":
            import onnxruntime

            providers = onnxruntime.get_available_providers()
            return (
                f"autoopt serves ONNX Runtime through its CPUExecutionProvider only, and this "
                f"target's device is {ctx.device} (this onnxruntime has {', '.join(providers)}); "
                "use torch_eager or torch_compile on a cuda target"
            )
        if ctx.recipe.precision.method == "bf16":
            return (
                "onnxruntime's CPUExecutionProvider has no bf16 kernels for Conv/MatMul/Gemm; "
                "use fp32/fp16 on onnxruntime or bf16 on a PyTorch backend"
            )
        if config.transformer_fusions and (reason := _fusion_refusal(ctx)):
            return reason
        if config.transformer_fusions and ctx.recipe.quantization is not None:
            return (
                "transformer_fusions: ONNX Runtime's optimizer fuses float graphs, and this "
                "recipe quantizes before the backend (its MatMulInteger / QDQ nodes match no "
                "Attention pattern); use transformer_fusions only without quantization"
            )
        pruning = ctx.recipe.pruning
        if (
            config.transformer_fusions
            and config.fusion_num_heads
            and pruning is not None
            and pruning.method == "attention_ffn"
            and float(pruning.params.get("heads", 0.0)) > 0
        ):
            return (
                f"transformer_fusions: fusion_num_heads={config.fusion_num_heads} is the "
                "unpruned model's head count, and this recipe prunes attention heads; set "
                "fusion_num_heads to 0 to detect it from the graph"
            )
        return None

    def compile(
        self, artifact: Artifact, config: OnnxRuntimeConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        if device != "cpu":
            raise CandidateError(
                f"backend.onnxruntime serves on the CPU only, not on {device}", stage="compile"
            )
        if not isinstance(artifact, OnnxArtifact):
            raise CandidateError(
                f"backend.onnxruntime serves ONNX graphs, not {artifact.kind}", stage="compile"
            )
        path = str(artifact.path)
        if config.transformer_fusions:
            path = fuse_transformer(path, config.fusion_num_heads, config.fusion_hidden_size)
        return OnnxRuntimeRunner(
            path, config.graph_optimization_level, threads, config.flush_denormals
        )


def _fusion_refusal(ctx: Context) -> str | None:
    """Why the workload's model cannot be fused: a layout ONNX Runtime's optimizer has no
    model type for, or attention that does not export to the fused pattern. A model with no
    layout at all is refused when its graph is compiled (the host self-test's probe, a piece
    of a model with a layout, is retried on the whole model then)."""
    from autoopt.layouts import find_layout, fusion_settings

    if find_layout(ctx.workload.model) is None:
        return None
    settings = fusion_settings(ctx.workload.model)
    return f"transformer_fusions: {settings}" if isinstance(settings, str) else None


def fuse_transformer(path: str, num_heads: int = 0, hidden_size: int = 0) -> str:
    """ONNX Runtime's transformer optimizer, as the graph's model layout says to run it
    (its ``model_type``, heads and width, recorded at export; ``num_heads`` and
    ``hidden_size`` override the last two).

    The fused graph is written beside the input; fusions apply fully only to a TorchScript
    (``dynamo=False``) export of an eager-attention model, which is what autoopt exports.
    """
    import logging

    import onnx
    from onnxruntime.transformers.optimizer import optimize_model

    from autoopt.layouts import recorded_fusion

    settings = recorded_fusion(onnx.load(path, load_external_data=False))
    if settings is None:
        raise CandidateError(
            "transformer_fusions: the graph records no model layout, so which ONNX Runtime "
            "fusions apply is unknown (its model was exported without one): "
            "autoopt.layouts.register_layout gives a model one (README: Model layouts)",
            stage="compile",
        )
    # The optimizer logs its fusion report and where it saves at INFO: not sweep output.
    with logger_level("onnxruntime.transformers", logging.WARNING):
        model = optimize_model(
            path,
            model_type=settings.model_type,
            num_heads=num_heads or settings.num_heads,
            hidden_size=hidden_size or settings.hidden_size,
            opt_level=0,
        )
        if not model.get_fused_operator_statistics().get("Attention"):
            raise CandidateError(
                f"transformer_fusions: ONNX Runtime's {settings.model_type} optimizer fused no "
                "Attention node in this graph",
                stage="compile",
            )
        # Never beside the input: that is a stage-cache entry, shared and read-only.
        fused = str(_scratch() / f"fused-{uuid.uuid4().hex[:8]}.onnx")
        model.save_model_to_file(fused)
    return fused


@functools.cache
def _scratch() -> Path:
    """A folder for this process's fused graphs, removed when the process exits."""
    holder = tempfile.TemporaryDirectory(prefix="autoopt-ort-")
    atexit.register(holder.cleanup)
    return Path(holder.name)
