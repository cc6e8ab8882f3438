"""OpenVINO on its CPU plugin: an IR compiled for latency at the experiment's threads.

The inference precision comes from the artifact (the recipe's ``precision.*`` stage records it
there) and is always set explicitly: the plugin's own default is bf16 on CPUs with native bf16
(it reported bf16 on this host's AMD EPYC), which would be an unrecorded precision change.
After compiling, the runner reads back what the plugin really uses and fails the candidate
when it differs from the recipe.

Settings measured on MiniLM here (batch 1, 128 tokens, 1 thread, 40 alternating rounds in one
process, f32 and NNCF int8): ``CPU_DENORMALS_OPTIMIZATION`` 0.99-1.01x, with real tokens or a
padded sentence; ``DYNAMIC_QUANTIZATION_GROUP_SIZE`` 0 instead of the plugin's 32, 1.00-1.02x
(it concerns weight-compressed layers, which NNCF int8 does not make); ``ENABLE_CPU_PINNING``
1.04x, within this shared host's noise. None is searched: denormals as they are (like
PyTorch), pinning off (the OS may then move the thread away from a build sharing its core, as
for the other backends). Static input shapes are searchable: see :class:`OpenVinoConfig`.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from autoopt.artifacts import OpenVinoArtifact
from autoopt.errors import CandidateError
from autoopt.plugins import Backend, Context, MethodConfig, Runner, register

if TYPE_CHECKING:
    import openvino as ov

    from autoopt.artifacts import Artifact


class OpenVinoConfig(MethodConfig):
    #: Compile one model per input shape, reshaped to it (the latency shape among them), instead
    #: of one with dynamic axes. On MiniLM at batch 1 × 128 tokens, NNCF int8 runs 1.12-1.15x
    #: faster and f32 1.05-1.07x (two runs of experiments/bench_openvino.py here). Each new
    #: shape compiles once (about a second for MiniLM): for fixed-shape serving, not for
    #: sentences at their own lengths.
    static_shapes: bool = False


@functools.cache
def _core() -> ov.Core:
    import openvino as ov

    return ov.Core()


def plugin_properties(threads: int, precision: str) -> dict[str, Any]:
    """What the runner compiles with."""
    return {
        # Ray pins PyTorch to the task's CPUs but not OpenVINO: always fix the threads.
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": precision,
        "ENABLE_CPU_PINNING": False,
    }


def runtime_op_counts(compiled: ov.CompiledModel) -> dict[str, int]:
    """The compiled (runtime) graph's layer types with the precision each runs at, e.g.
    ``FullyConnected:i8``: what the plugin really executes after its own fusions."""
    counts: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str)
        if layer in ("Const", "Input", "Output"):
            continue
        counts[f"{layer}:{info['runtimePrecision'].astype(str)}"] += 1
    return dict(sorted(counts.items()))


class OpenVinoRunner(Runner):
    def __init__(
        self, artifact: OpenVinoArtifact, threads: int, static_shapes: bool = False
    ) -> None:
        self.model = _core().read_model(str(artifact.path))
        self.precision = artifact.inference_precision
        self.threads = threads
        self.static_shapes = static_shapes
        self.input_names = [p.get_any_name() for p in self.model.inputs]
        self.dtypes = [p.get_element_type().to_dtype() for p in self.model.inputs]
        self._compiled: dict[tuple[tuple[int, ...], ...], ov.CompiledModel] = {}
        self._requests: dict[tuple[tuple[int, ...], ...], ov.InferRequest] = {}
        if not static_shapes:
            self._compile(None)

    def _compile(self, shapes: tuple[tuple[int, ...], ...] | None) -> ov.CompiledModel:
        model = self.model
        if shapes is not None:
            model = self.model.clone()
            model.reshape(dict(zip(self.input_names, (list(s) for s in shapes), strict=True)))
        compiled = _core().compile_model(
            model, "CPU", plugin_properties(self.threads, self.precision)
        )
        used = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        if used != self.precision:
            raise CandidateError(
                f"the OpenVINO CPU plugin compiled the model at inference precision {used}, "
                f"and the recipe asked for {self.precision}: it cannot run that precision here",
                stage="compile",
            )
        self._compiled[shapes or ()] = compiled
        self._requests[shapes or ()] = compiled.create_infer_request()
        return compiled

    def _key(self, feed: list[np.ndarray]) -> tuple[tuple[int, ...], ...]:
        key = tuple(tuple(x.shape) for x in feed) if self.static_shapes else ()
        if key not in self._compiled:
            self._compile(key)
        return key

    def _feed(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [
            np.ascontiguousarray(x, dtype=dtype)
            for x, dtype in zip(inputs, self.dtypes, strict=True)
        ]

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        feed = self._feed(inputs)
        request = self._requests[self._key(feed)]
        request.infer(dict(zip(self.input_names, feed, strict=True)))
        return np.array(request.get_output_tensor(0).data, dtype=np.float32)

    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        feed = self._feed(inputs)
        # A request of its own: its input tensors become views of these arrays, which later
        # batches of another size could not be written into.
        request = self._compiled[self._key(feed)].create_infer_request()
        named = dict(zip(self.input_names, feed, strict=True))
        # Inputs are already the model's dtype and contiguous: the plugin reads them in place.
        return lambda: request.infer(named, share_inputs=True, share_outputs=True)

    def describe(self) -> dict[str, Any]:
        import openvino as ov

        first = next(iter(self._compiled.values()), None)
        info: dict[str, Any] = {
            "backend": "openvino",
            "openvino": ov.__version__,
            "static_shapes": self.static_shapes,
            "compiled_shapes": [list(map(list, k)) for k in self._compiled if k],
        }
        if first is not None:
            info.update(
                {
                    "inference_precision": first.get_property(
                        "INFERENCE_PRECISION_HINT"
                    ).get_type_name(),
                    "threads": int(first.get_property("INFERENCE_NUM_THREADS")),
                    "streams": int(first.get_property("NUM_STREAMS")),
                    "performance_hint": str(first.get_property("PERFORMANCE_HINT")),
                    "op_counts": runtime_op_counts(first),
                }
            )
        return info


@register
class OpenVinoBackend(Backend[OpenVinoConfig]):
    key = "backend.openvino"
    Config = OpenVinoConfig
    artifact_kind = "openvino"
    kernel_fields = ("static_shapes",)

    @classmethod
    @functools.cache
    def unavailable_reason(cls) -> str | None:
        try:
            import openvino  # noqa: F401
        except ImportError as e:
            return f"openvino is not installed: {e}"
        devices = _core().available_devices
        if "CPU" not in devices:
            return f"OpenVINO sees no CPU device here (devices: {', '.join(devices) or 'none'})"
        return None

    def check(self, config: OpenVinoConfig, ctx: Context) -> str | None:
        if ctx.device != "cpu":
            return (
                f"autoopt serves OpenVINO through its CPU plugin only, and this target's "
                f"device is {ctx.device}; use torch_eager or torch_compile on a cuda target"
            )
        if ctx.recipe.precision.method == "fp8":
            return "OpenVINO's CPU plugin has no fp8 inference precision; use fp32, bf16 or fp16"
        return None

    def compile(
        self, artifact: Artifact, config: OpenVinoConfig, threads: int, device: str = "cpu"
    ) -> Runner:
        if device != "cpu":
            raise CandidateError(
                f"backend.openvino serves on the CPU only, not on {device}", stage="compile"
            )
        if not isinstance(artifact, OpenVinoArtifact):
            raise CandidateError(
                f"backend.openvino compiles OpenVINO IRs, and was given a {artifact.kind} model",
                stage="compile",
            )
        return OpenVinoRunner(artifact, threads, config.static_shapes)
