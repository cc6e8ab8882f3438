"""Quantization-aware training of a PT2E graph: prepare, fine-tune against the teacher, convert.

The model is captured by ``torch.export`` and prepared by torchao's ``prepare_qat_pt2e`` with
the same x86 quantizer static int8 uses (:mod:`._pt2e`, ``is_qat``): fake-quantize modules on
the inputs of every quantized Linear/Conv and on its weights (per output channel), and a
Conv+BatchNorm pair rewritten so that the fake-quantized weight is the BN-folded one. It is
then fine-tuned by the distillation loop every training technique uses
(:func:`~autoopt.techniques._training.train_against_teacher`), and converted to the q/dq graph
static int8 produces, which Inductor's freezing lowers to oneDNN's int8 kernels.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from autoopt.errors import CandidateError
from autoopt.techniques._training import train_against_teacher
from autoopt.techniques.quantization._pt2e import (
    MAX_BATCH,
    _drop_unused_tensors,
    capture,
    float_layers,
    quantized_op_count,
)
from autoopt.techniques.quantization._smooth import smooth_on_calibration
from autoopt.torch_export import ExportedModule, register_inductor_passes

if TYPE_CHECKING:
    from autoopt.plugins import Context
    from autoopt.techniques.quantization._config import QatInt8Config
    from autoopt.workloads import Workload

#: Batch-norm ops whose argument 5 is ``training`` (what freezing BN turns off).
_BATCH_NORMS = ("aten.batch_norm.default", "aten._native_batch_norm_legit.default")
#: Dropout ops whose argument 2 is ``train``.
_DROPOUTS = ("aten.dropout.default", "aten.native_dropout.default")


class QatModel(nn.Module):
    """A prepared QAT graph as the training loop expects a module.

    An exported graph refuses ``nn.Module.train``/``eval``; here they move its batch-norm
    ops between modes (torchao's ``move_exported_model_to_train``/``_eval``), keep its
    dropout off in both, and return the module. Observers and batch norm freeze on a
    schedule counted in training calls: the loop makes one per step, so the schedule lives
    with the model and the shared loop needs no hook for it. The count is the module's extra
    state, so a training checkpoint (a rung, a cut trial) carries it and the continued run
    freezes on schedule.
    """

    def __init__(self, graph: torch.fx.GraphModule, observers_at: int, batchnorm_at: int) -> None:
        super().__init__()
        self.graph = graph
        #: Training calls after which observers (activation and weight ranges) stop
        #: updating, and after which batch norm uses its running statistics.
        self.observers_at, self.batchnorm_at = observers_at, batchnorm_at
        self.calls = 0

    def forward(self, *args: Any) -> Any:
        if self.training:
            if self.calls == self.observers_at:
                from torchao.quantization.pt2e import disable_observer

                self.graph.apply(disable_observer)
            if self.calls == self.batchnorm_at:
                freeze_batchnorm(self.graph)
            self.calls += 1
        return self.graph(*args)

    def get_extra_state(self) -> dict[str, int]:
        return {"calls": self.calls}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.calls = int(state["calls"])

    def train(self, mode: bool = True) -> QatModel:
        from torchao.quantization.pt2e import (
            move_exported_model_to_eval,
            move_exported_model_to_train,
        )

        self.training = mode
        (move_exported_model_to_train if mode else move_exported_model_to_eval)(self.graph)
        # torchao's switch rewrites every dropout as ``p=0.5`` (its pattern's literal), and
        # fine-tuning MiniLM through dropout 0.5 took its fidelity from static int8's 0.991
        # to 0.950: dropout stays off, the teacher's targets are the regularizer.
        dropout_off(self.graph)
        if mode and self.calls > self.batchnorm_at:
            freeze_batchnorm(self.graph)
        return self


def dropout_off(graph: torch.fx.GraphModule) -> int:
    """Every dropout in ``graph`` an identity (``train=False``); returns how many it turned
    off."""
    return _train_flag_off(graph, _DROPOUTS, 2)


def freeze_batchnorm(graph: torch.fx.GraphModule) -> int:
    """Batch norm in ``graph`` normalizes with its running statistics and stops updating them,
    dropout and fake quantization unchanged; returns how many batch-norm ops it froze."""
    return _train_flag_off(graph, _BATCH_NORMS, 5)


def _train_flag_off(graph: torch.fx.GraphModule, ops: tuple[str, ...], index: int) -> int:
    """The training flag (argument ``index``) of every ``ops`` call in ``graph`` set to False;
    returns how many were on."""
    off = 0
    for node in graph.graph.nodes:
        if node.op == "call_function" and str(node.target) in ops and node.args[index]:
            node.args = (*node.args[:index], False, *node.args[index + 1 :])
            off += 1
    if off:
        graph.recompile()
    return off


def _tensors(arrays: tuple[np.ndarray, ...]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(x)) for x in arrays]


def _trimmed(workload: Workload, arrays: tuple[np.ndarray, ...]) -> tuple[torch.Tensor, ...]:
    tensors = tuple(_tensors(arrays))
    return workload.trim_batch(tensors) if workload.trim_batch else tensors


def prepare_qat(model: nn.Module, config: QatInt8Config, ctx: Context, stage: str) -> QatModel:
    """``model`` (unchanged) captured and prepared for QAT (smoothed first with
    ``smooth_quant_alpha``), its ranges first observed on the calibration split. The
    capture's sequence axes stay dynamic, so training batches can be cut to their longest
    sample (``trim_batch``)."""
    register_inductor_passes()
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    excluded = float_layers(model, config, stage)
    workload = ctx.workload
    example = tuple(_tensors(workload.example_inputs(2)))
    axes = workload.onnx_dynamic_axes()
    shapes = tuple(
        {axis: torch.export.Dim.DYNAMIC for axis in axes.get(name, {0: "batch"})}
        for name in workload.input_names
    )
    # A copy: the captured graph shares the module's parameters, and training updates them.
    model = copy.deepcopy(model).eval()
    smooth_on_calibration(model, excluded, config, workload)
    captured = capture(model, example, shapes, "QAT", stage)
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=True))
    for name in excluded:
        quantizer.set_module_name_qconfig(name, None)
    prepared = prepare_qat_pt2e(captured, quantizer)  # type: ignore[arg-type]
    steps = config.steps
    qat = QatModel(
        prepared,
        observers_at=round(config.freeze_observers * steps) if config.freeze_observers < 1 else -1,
        batchnorm_at=round(config.freeze_batchnorm * steps) if config.freeze_batchnorm < 1 else -1,
    )
    # Initial ranges from the calibration split, batch norm and dropout in eval mode (the
    # calibration split must not move the running statistics).
    move_exported_model_to_eval(prepared)
    split = workload.calibration.take(min(config.calibration_samples, len(workload.calibration)))
    with torch.no_grad():
        for inputs, _ in split.batches(32):
            prepared(*_trimmed(workload, inputs))
    return qat


def train_qat(qat: QatModel, config: QatInt8Config, ctx: Context) -> QatModel:
    """Fine-tune the prepared graph in place with the distillation loss against the fp32
    teacher on the train split (the evaluation split is never read), in the pipeline's
    training session: a rung stops early, and a later build goes on from its checkpoint."""
    trained = train_against_teacher(
        qat,
        ctx.workload,
        steps=config.steps,
        lr=config.lr,
        batch_size=config.batch_size,
        temperature=config.temperature,
        alpha=config.alpha,
        seed=ctx.seed,
        device=ctx.device,
        session=ctx.training,
    )
    assert isinstance(trained, QatModel)  # noqa: S101 - the loop returns what it was given
    return trained


def convert_qat(qat: QatModel, config: QatInt8Config, ctx: Context, stage: str) -> ExportedModule:
    """The trained graph converted to static int8's q/dq form and exported again with a
    dynamic batch axis only, as static int8's graph is."""
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    qat.eval()
    converted = convert_pt2e(qat.graph)
    move_exported_model_to_eval(converted)
    _drop_unused_tensors(converted)
    example = tuple(_tensors(ctx.workload.example_inputs(2)))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    shapes = tuple({0: batch} for _ in example)
    out = ExportedModule(torch.export.export(converted, example, dynamic_shapes=shapes)).eval()
    if not quantized_op_count(out):
        raise CandidateError(
            f"{stage}: QAT quantized no layer of this model (exclusions {config.exclude}, "
            f"op_types {config.op_types})",
            stage=stage,
        )
    return out
