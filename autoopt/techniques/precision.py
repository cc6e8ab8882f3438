"""Precision: run the model in fp32 (unchanged), fp16 or bf16 (fp8: :mod:`.float8`).

On OpenVINO the precision is the CPU plugin's inference precision hint, recorded on the IR
(:class:`~autoopt.artifacts.OpenVinoArtifact`): the weights stay as they are and the plugin
computes in that precision, which the backend reads back after compiling.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, ClassVar

from autoopt.artifacts import OnnxArtifact, OpenVinoArtifact, TorchArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig, Technique, register
from autoopt.techniques._onnx import as_onnx, scratch_path

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact, ArtifactKind, OpenVinoPrecision
    from autoopt.plugins import Context


class PrecisionConfig(MethodConfig):
    """Precision methods have no settings."""


@register
class Fp32Precision(Technique[PrecisionConfig]):
    """The identity: every model starts in fp32."""

    key = "precision.fp32"
    family = "precision"
    Config = PrecisionConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch", "onnx", "openvino")

    def apply(self, artifact: Artifact, config: PrecisionConfig, ctx: Context) -> Artifact:
        return artifact


class _HalfPrecision(Technique[PrecisionConfig]):
    family = "precision"
    Config = PrecisionConfig
    accepts: ClassVar[tuple[ArtifactKind, ...]] = ("torch", "onnx", "openvino")
    #: "fp16" or "bf16".
    name: ClassVar[str]

    def _dtype(self) -> torch.dtype:
        import torch

        return torch.float16 if self.name == "fp16" else torch.bfloat16

    def _native(self, ctx: Context) -> bool:
        return ctx.hardware.native_fp16 if self.name == "fp16" else ctx.hardware.native_bf16

    def check(self, config: PrecisionConfig, ctx: Context) -> str | None:
        if ctx.device == "cuda":
            return None  # every CUDA GPU PyTorch supports has fp16; bf16 is checked below
        if ctx.backend_kind in ("torch", "openvino") and not self._native(ctx):
            flags = "avx512_fp16 or amx_fp16" if self.name == "fp16" else "avx512_bf16 or amx_bf16"
            engine = (
                f"OpenVINO's CPU plugin cannot compute in {self.name} natively"
                if ctx.backend_kind == "openvino"
                else f"PyTorch would emulate {self.name} slower than fp32"
            )
            return (
                f"this CPU ({ctx.hardware.cpu_model}) has no native {self.name} arithmetic "
                f"(needs {flags}), so {engine}; use "
                f"fp32{' or fp16 on onnxruntime' if self.name == 'fp16' else ''}, or a host "
                "with those instructions or a cuda target"
            )
        return None

    def apply(self, artifact: Artifact, config: PrecisionConfig, ctx: Context) -> Artifact:
        if isinstance(artifact, OpenVinoArtifact):
            # The same IR, compiled at this precision: the plugin converts the weights itself.
            precision: OpenVinoPrecision = "f16" if self.name == "fp16" else "bf16"
            return dataclasses.replace(artifact, inference_precision=precision)
        if isinstance(artifact, TorchArtifact) and ctx.backend_kind == "torch":
            model = copy.deepcopy(artifact.model).to(self._dtype())
            return TorchArtifact(model.eval())
        return self._apply_onnx(as_onnx(artifact, ctx, self.name), ctx)

    def _apply_onnx(self, artifact: OnnxArtifact, ctx: Context) -> OnnxArtifact:
        raise CandidateError(f"precision {self.name} is not available for ONNX", stage=self.key)


@register
class Fp16Precision(_HalfPrecision):
    """Half precision. PyTorch: parameters and inputs cast to float16. ONNX: the graph's
    weights and compute in float16, inputs and outputs kept float32 (casts at the edges).
    OpenVINO: the plugin's inference precision f16."""

    key = "precision.fp16"
    name = "fp16"

    def _apply_onnx(self, artifact: OnnxArtifact, ctx: Context) -> OnnxArtifact:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        try:
            model = convert_float_to_float16(onnx.load(str(artifact.path)), keep_io_types=True)
        except Exception as e:  # noqa: BLE001 - any converter failure fails this candidate
            raise CandidateError(
                f"fp16 conversion of the ONNX graph failed: {type(e).__name__}: {e}",
                stage=self.key,
            ) from e
        out = scratch_path(ctx, "fp16")
        onnx.save(model, str(out))
        return OnnxArtifact(out)


@register
class Bf16Precision(_HalfPrecision):
    """bfloat16 on PyTorch (parameters and inputs cast to bfloat16) and OpenVINO (the plugin's
    inference precision)."""

    key = "precision.bf16"
    name = "bf16"

    def check(self, config: PrecisionConfig, ctx: Context) -> str | None:
        if ctx.backend_kind == "onnx":
            return (
                "bf16 is not built for ONNX: onnxruntime's CPU execution provider has no bf16 "
                "Conv/MatMul/Gemm kernels; use fp32/fp16 on onnxruntime or bf16 on torch_eager "
                "or torch_compile"
            )
        if ctx.device == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                name = torch.cuda.get_device_name()
                return f"this GPU ({name}) has no bf16 arithmetic (needs compute capability 8.0+)"
        return super().check(config, ctx)
