"""Static int8 for PyTorch: PT2 export quantization (torchao's ``X86InductorQuantizer``).

The model is captured with ``torch.export``, observed on the calibration split and converted
to a graph of quantize/dequantize ops around float Linears. Eager PyTorch runs that graph in
float (a reference, no faster); Inductor with freezing folds each q/dq pattern into oneDNN's
int8 Linear (VNNI on this CPU), and generates fused C++ kernels for the rest. That is why
the quantized model is only served by ``torch_compile`` with ``freezing: true``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from autoopt.errors import CandidateError
from autoopt.techniques._names import covered
from autoopt.techniques.quantization._layers import require_known_modules
from autoopt.techniques.quantization._smooth import smooth_on_calibration
from autoopt.torch_export import ExportedModule, register_inductor_passes

if TYPE_CHECKING:
    from autoopt.plugins import Context
    from autoopt.techniques.quantization._config import QuantizationConfig, StaticInt8Config

#: The largest batch the captured graph accepts: its batch dimension is dynamic, the rest
#: (a transformer's sequence length) static.
MAX_BATCH = 4096


def pt2e_static(
    model: torch.nn.Module, config: StaticInt8Config, ctx: Context, stage: str
) -> ExportedModule:
    """``model`` (unchanged) with its chosen Linears and Conv2ds in static int8; the excluded
    ones, and those of an op type not chosen, stay float. With ``smooth_quant_alpha`` the
    quantized Linears are smoothed first (:mod:`._smooth`). GPT-2's Conv1D layers are captured
    as the equal ``nn.Linear``, the layer the quantizer annotates."""
    from autoopt.layouts import linear_copy

    model = linear_copy(model).eval()
    excluded = float_layers(model, config, stage)
    smooth_on_calibration(model, excluded, config, ctx.workload)
    quantized = quantize_static(model, config, excluded, ctx, stage)
    if not quantized_op_count(quantized):
        raise CandidateError(
            f"{stage}: PT2E quantized no layer of this model (exclusions "
            f"{config.exclude}, op_types {config.op_types})",
            stage=stage,
        )
    return quantized


def float_layers(model: torch.nn.Module, config: QuantizationConfig, stage: str) -> list[str]:
    """The Linear/Conv2d modules PT2E leaves float: excluded, or of an op type not chosen.
    Raises CandidateError where an exclusion names no quantizable layer."""
    from torch import nn

    kinds: list[type[nn.Module]] = []
    if {"MatMul", "Gemm"} & set(config.op_types):
        kinds.append(nn.Linear)
    if "Conv" in config.op_types:
        kinds.append(nn.Conv2d)
    layers = [n for n, m in model.named_modules() if isinstance(m, tuple(kinds))]
    require_known_modules(model, config.exclude, stage, layers)
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d) and (n not in layers or covered(n, config.exclude))
    ]


def _observer_config(method: str) -> Any:
    import dataclasses

    from torchao.quantization.pt2e.observer import MinMaxObserver
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    # Activations: unsigned int8 per tensor (what oneDNN's int8 Linear takes); weights: signed
    # int8 per output channel. The default activation observer is a histogram.
    config = xiq.get_default_x86_inductor_quantization_config()
    if method == "minmax":
        activation = config.input_activation
        config = dataclasses.replace(
            config,
            input_activation=dataclasses.replace(
                activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12)
            ),
        )
    return config


def capture(
    model: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    shapes: tuple[dict[int, Any], ...],
    purpose: str,
    stage: str,
) -> torch.nn.Module:
    """``model`` captured by ``torch.export`` for ``purpose``; a model it cannot capture
    fails this candidate only, with the exporter's first line."""
    try:
        return torch.export.export(model, example, dynamic_shapes=shapes).module()
    except Exception as e:  # noqa: BLE001 - an uncapturable model fails this candidate only
        raise CandidateError(
            f"torch.export cannot capture this model for {purpose}: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            stage=stage,
        ) from e


def quantize_static(
    model: torch.nn.Module, config: StaticInt8Config, excluded: list[str], ctx: Context, stage: str
) -> ExportedModule:
    """``model`` (unchanged) captured, calibrated and converted; ``excluded`` modules stay
    float. Raises CandidateError where ``torch.export`` cannot capture the model."""
    register_inductor_passes()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import X86InductorQuantizer

    workload = ctx.workload
    example = tuple(torch.from_numpy(x) for x in workload.example_inputs(2))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    shapes = tuple({0: batch} for _ in example)
    captured = capture(model, example, shapes, "PT2E quantization", stage)
    quantizer = X86InductorQuantizer()
    quantizer.set_global(_observer_config(config.calibration_method))
    for name in excluded:
        quantizer.set_module_name_qconfig(name, None)
    prepared = prepare_pt2e(captured, quantizer)  # type: ignore[arg-type]
    split = workload.calibration
    split = split.take(min(config.calibration_samples, len(split)))
    with torch.no_grad():
        for inputs, _ in split.batches(32):
            prepared(*(torch.from_numpy(x) for x in inputs))
    converted = convert_pt2e(prepared)
    _drop_unused_tensors(converted)
    # Exported again: the converted graph module itself does not pickle.
    program = torch.export.export(converted, example, dynamic_shapes=shapes)
    return ExportedModule(program).eval()


def _drop_unused_tensors(module: torch.fx.GraphModule) -> None:
    """Deletes the float weights that conversion replaced with int8 constants: no node reads
    them, but they would stay in the saved program (and its size) for nothing."""
    used = {str(n.target) for n in module.graph.nodes if n.op == "get_attr"}
    names = [n for n, _ in module.named_parameters()] + [n for n, _ in module.named_buffers()]
    for name in names:
        if name not in used:
            owner, _, leaf = name.rpartition(".")
            delattr(module.get_submodule(owner), leaf)


def quantized_op_count(model: torch.nn.Module) -> int:
    """How many quantize/dequantize ops the model's graph holds (0: nothing was quantized)."""
    graph = model.graph_module if isinstance(model, ExportedModule) else None
    if graph is None:
        return 0
    return sum(
        1
        for node in graph.graph.nodes
        if node.op == "call_function" and "quantize_per" in str(node.target)
    )
