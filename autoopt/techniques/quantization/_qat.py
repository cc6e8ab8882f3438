"""Quantization-aware training to static int8 (``quantization.qat_int8``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from autoopt.artifacts import TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Technique, register
from autoopt.techniques._roles import exclusion_refusal
from autoopt.techniques.quantization._config import QatInt8Config, precision_conflict, with_roles

if TYPE_CHECKING:
    from autoopt.artifacts import Artifact, ArtifactKind
    from autoopt.plugins import Context


#: Why ONNX Runtime does not serve QAT int8 (measured with ONNX Runtime 1.32, torch 2.13).
ONNXRUNTIME = (
    "QAT int8's ONNX QDQ graph does not run as int8 on ONNX Runtime: the exported graph of a "
    "BERT fails to load ('Duplicate definition of name'), and on the digits CNN ONNX Runtime "
    "fuses only the QDQ pairs whose output is quantized again, so the last int8 Linear runs "
    "in float; use backend openvino (the same QDQ graph, every Linear/Conv as a u8 kernel) or "
    "torch_compile with freezing, or quantization.static_int8 on onnxruntime"
)


@register
class QatInt8Quantization(Technique[QatInt8Config]):
    """Static int8 whose weights were fine-tuned through fake quantization.

    The model (the teacher, a student or a pruned model) is prepared with torchao's
    ``prepare_qat_pt2e`` and the x86 quantizer static int8 uses, fine-tuned against the fp32
    teacher with the distillation loss, and converted to the same q/dq graph
    (:mod:`._qat_graph`). ``torch_compile`` with ``freezing`` lowers it to oneDNN's int8
    kernels; for ``openvino`` the export stage after it converts the program through its ONNX
    QDQ graph (:mod:`._qdq`) with the trained scales, which the CPU plugin runs as int8. ONNX
    Runtime is refused (see :data:`ONNXRUNTIME`).
    """

    key = "quantization.qat_int8"
    family = "quantization"
    Config = QatInt8Config
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch",)
    kernel_fields = ("per_channel", "op_types")
    #: The self-test's probe trains two steps on its calibration rows: QAT's kernels are
    #: static int8's whatever the training.
    selftest_config: ClassVar[dict[str, Any]] = {"steps": 2, "calibration_samples": 32}

    def check(self, config: QatInt8Config, ctx: Context) -> str | None:
        if reason := precision_conflict(ctx) or exclusion_refusal(config.exclude, ctx):
            return reason
        if ctx.device != "cpu":
            return (
                f"QAT int8 runs on the CPU (oneDNN's, ONNX Runtime's and OpenVINO's int8 "
                f"kernels), and this target's device is {ctx.device}; use precision fp8, fp16 "
                "or bf16 on a cuda target"
            )
        if not config.per_channel:
            return (
                "PT2E quantization for x86 scales weights per output channel only: set "
                "per_channel: true"
            )
        if not {"MatMul", "Gemm", "Conv"} & set(config.op_types):
            return (
                f"PT2E quantization covers nn.Linear (MatMul/Gemm) and nn.Conv2d (Conv), and "
                f"op_types is {config.op_types}"
            )
        if ctx.backend_kind == "onnx":
            return ONNXRUNTIME
        backend = ctx.recipe.backend
        if backend.method == "torch_eager" or (
            backend.method == "torch_compile" and not backend.params.get("freezing")
        ):
            return (
                "QAT int8 on PyTorch is a PT2E graph that only Inductor turns into int8 kernels "
                "(eager runs it in float): use backend torch_compile with "
                "backend.torch_compile.freezing: true, or backend openvino (an ONNX QDQ graph)"
            )
        if ctx.backend_kind not in ("torch", "openvino"):
            return f"QAT int8 has no form for {ctx.recipe.backend.key}"
        return None

    def apply(self, artifact: Artifact, config: QatInt8Config, ctx: Context) -> Artifact:
        from autoopt.techniques.quantization._qat_graph import convert_qat, prepare_qat, train_qat

        if not isinstance(artifact, TorchArtifact):
            raise CandidateError(
                f"{self.key} trains the PyTorch model, and this stage received a "
                f"{artifact.kind} model",
                stage=self.key,
            )
        config = with_roles(config, ctx, self.key)
        qat = train_qat(prepare_qat(artifact.model, config, ctx, self.key), config, ctx)
        # The int8 program whatever the backend, so that Inductor and OpenVINO candidates
        # share one trained stage; the OpenVINO export stage after it converts the program
        # through its ONNX QDQ export.
        return TorchArtifact(convert_qat(qat, config, ctx, self.key))
