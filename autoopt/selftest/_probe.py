"""The probe: a piece of the workload's own model that runs in seconds with its op types and
shapes.

The probe is the first instance of the model's most repeated block (:func:`find_block`:
MiniLM gives ``BertLayer``), fed the arguments that block really receives: a forward pre-hook
catches them while the full teacher runs on calibration inputs at each batch size that
measurement uses, because a kernel may be wrong for one GEMM shape only. A model without a
repeated block (a small CNN) is its own probe, and so is any model on request (``whole``):
the self-test retries there a path the block cannot be built for.

The probe is a real :class:`~autoopt.workloads.Workload` (its splits hold the caught inputs,
its metric is the cosine to the fp32 block), so the normal pipeline builds and compiles it
unchanged: ONNX export and PT2E capture see a module whose inputs all have the batch axis
first and whose ``forward`` names them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from autoopt.errors import WorkloadError
from autoopt.selftest._block import (
    BlockChain,
    Buffer,
    Input,
    argument_names,
    block_probe,
    block_run,
    catch_block_io,
    find_block,
)
from autoopt.workloads import Split, Workload, cosine_similarity

if TYPE_CHECKING:
    from autoopt.config import LatencyConfig, VerifyConfig

#: Rows of the probe's evaluation split per batch size (eight batches of 1, one of 64):
#: enough samples for a minimum cosine to mean something, few enough to run in seconds.
MIN_ROWS_PER_BATCH = 8
#: Calibration rows for static int8 on the probe (also its train split, which nothing uses:
#: a path has no distillation or pruning).
CALIBRATION_ROWS = 32
#: Consecutive blocks in the probe: two have the seam between blocks, which one lacks (on
#: MiniLM, PT2E int8 under max-autotune computed garbage on two BertLayers and right on one).
CHAIN_LENGTH = 2
#: How closely the probe must reproduce the block's outputs inside the model (relative to
#: their scale): it runs the same code on the same tensors, so only the order of float sums
#: may differ between a batch and its rows.
FAITHFUL_RTOL = 1e-4


@dataclass(frozen=True)
class ProbeGroup:
    """Rows ``start:stop`` of the probe's evaluation split, caught at ``batch_size`` and run
    at that batch size."""

    batch_size: int
    start: int
    stop: int


@dataclass
class Probe:
    """The probe workload, what it was cut from, and its fp32 outputs."""

    workload: Workload
    #: Module path of the (first) block in the teacher ("" when the probe is the whole model).
    block: str
    block_class: str
    #: How many consecutive blocks the probe runs (1 for the whole model).
    blocks: int
    groups: tuple[ProbeGroup, ...]
    #: The fp32 eager probe's outputs on the evaluation split, group by group.
    reference: np.ndarray
    #: The block's outputs inside the full model on the same rows (what ``reference`` must
    #: reproduce).
    inside: np.ndarray
    #: The workload it was cut from.
    source: str = ""

    def shapes(self, batch_size: int) -> str:
        """The probe's input shapes at one batch size, e.g. ``1x128x384 + 1x1x128x128``."""
        return " + ".join(
            "x".join(str(d) for d in (batch_size, *x.shape[1:]))
            for x in self.workload.evaluation.inputs
        )

    @property
    def label(self) -> str:
        """``BertLayer x2``, ``BertLayer`` or ``SentenceEmbedder (whole model)``."""
        if not self.block:
            return f"{self.block_class} (whole model)"
        return self.block_class + (f" x{self.blocks}" if self.blocks > 1 else "")

    def describe(self) -> str:
        """``BertLayer x2 (from bert.encoder.layer.0 of minilm): 1x128x384 + 1x1x128x128,
        ...``."""
        where = f"from {self.block}" if self.block else "the whole model"
        shapes = ", ".join(self.shapes(g.batch_size) for g in self.groups)
        return f"{self.label} ({where} of {self.source}): {shapes}"


def probe_batch_sizes(
    latency: LatencyConfig, verify: VerifyConfig, evaluation_size: int
) -> tuple[int, ...]:
    """The batch sizes a candidate runs at when measured: the latency batch sizes, verify's
    reference batch and measurement's scoring batch (:data:`autoopt.measure.EVAL_BATCH`)."""
    from autoopt.measure import EVAL_BATCH

    sizes = {
        latency.batch_size,
        *latency.extra_batch_sizes,
        min(verify.reference_samples, evaluation_size),
        min(EVAL_BATCH, evaluation_size),
    }
    return tuple(sorted(sizes))


def probe_identity(workload: Workload, batch_sizes: Sequence[int]) -> dict[str, Any]:
    """What determines the probe, known without building it: the workload's version (its
    weights and data) and model code, the block and the batch sizes it is caught at."""
    found = find_block(workload.model)
    path, block = found if found is not None else ("", workload.model)
    return {
        "workload": workload.name,
        "version": workload.version,
        "model_code": workload.model_code,
        "block": path,
        "block_class": f"{type(block).__module__}.{type(block).__qualname__}",
        "batch_sizes": sorted(set(batch_sizes)),
        "rows": [MIN_ROWS_PER_BATCH, CALIBRATION_ROWS, CHAIN_LENGTH],
    }


def _rows(split: Split, start: int, n: int) -> tuple[np.ndarray, ...]:
    """``n`` samples from ``start`` on, wrapping around a split smaller than that."""
    idx = (start + np.arange(n)) % len(split)
    return tuple(x[idx] for x in split.inputs)


def build_probe(workload: Workload, batch_sizes: Sequence[int], whole: bool = False) -> Probe:
    """Cut the probe from ``workload``'s teacher: :data:`CHAIN_LENGTH` consecutive blocks,
    one where the chain does not reproduce the model (blocks that do not feed each other),
    the whole teacher if ``whole`` or if no block repeats; caught at each of
    ``batch_sizes``. Raises WorkloadError when the arguments cannot be replayed (no batch
    axis, shapes that change with the batch) or the probe does not reproduce the model."""
    found = None if whole else find_block(workload.model)
    if found is None:
        return _build(workload, batch_sizes, "", 1)
    try:
        return _build(workload, batch_sizes, found[0], CHAIN_LENGTH)
    except WorkloadError:
        return _build(workload, batch_sizes, found[0], 1)


class _Catcher:
    """Runs the teacher on calibration rows (a fresh slice each time) and catches what the
    probe's first block receives and what its last block returns."""

    def __init__(self, workload: Workload, teacher: Any, block: Any, last: Any) -> None:
        self.workload, self.teacher, self.block, self.last = workload, teacher, block, last
        self.offset = 0
        self.spec: pytree.TreeSpec | None = None
        self.batched: list[bool] = []

    def catch(self, n: int) -> tuple[list[Any], pytree.TreeSpec, torch.Tensor]:
        rows = _rows(self.workload.calibration, self.offset, n)
        args, kwargs, output = catch_block_io(self.teacher, self.block, rows, self.last)
        self.offset += n
        leaves, spec = pytree.tree_flatten((args, kwargs))
        return leaves, spec, output

    def inputs(self, leaves: list[Any], got: pytree.TreeSpec) -> list[np.ndarray]:
        """The batched arguments of one catch, as the probe's inputs."""
        if got != self.spec:
            raise WorkloadError(
                f"workload '{self.workload.name}': {type(self.block).__name__} receives "
                "different arguments at different batch sizes"
            )
        return [leaf.numpy() for leaf, b in zip(leaves, self.batched, strict=True) if b]


def _signature(
    catcher: _Catcher, widest: int, path: str
) -> tuple[list[Any], pytree.TreeSpec, list[str], dict[str, torch.Tensor]]:
    """Which arguments carry the batch (caught at the largest batch: those whose first axis
    is that batch; at a batch of 1 a batched tensor and a constant look alike), and the
    probe's replay of the arguments: inputs, constant tensors as buffers, other values fixed."""
    workload, block = catcher.workload, catcher.block
    leaves, spec, _ = catcher.catch(widest)
    batched = [
        isinstance(x, torch.Tensor) and x.dim() > 0 and x.shape[0] == widest for x in leaves
    ]
    if not any(batched):
        name = type(block).__name__
        raise WorkloadError(f"workload '{workload.name}': no argument of {name} has a batch axis")
    catcher.spec, catcher.batched = spec, batched
    names = argument_names(block, *pytree.tree_unflatten(leaves, spec))
    marks: list[Any] = []
    buffers: dict[str, torch.Tensor] = {}
    input_names: list[str] = []
    for i, (leaf, is_batched) in enumerate(zip(leaves, batched, strict=True)):
        if is_batched:
            marks.append(Input(len(input_names)))
            input_names.append(names[i])
        elif isinstance(leaf, torch.Tensor):
            marks.append(Buffer(f"const_{i}"))
            buffers[f"const_{i}"] = leaf.clone()
        else:
            marks.append(leaf)
    if not path and len(input_names) == len(workload.input_names):
        input_names = list(workload.input_names)  # the whole model: the names it declared
    return marks, spec, input_names, buffers


def _evaluation(
    catcher: _Catcher, sizes: list[int]
) -> tuple[Split, np.ndarray, tuple[ProbeGroup, ...]]:
    """Enough rows at each batch size, with what the blocks returned inside the model."""
    groups: list[ProbeGroup] = []
    evaluation: list[list[np.ndarray]] = []
    inside: list[np.ndarray] = []
    row = 0
    for size in sizes:
        start = row
        for _ in range(math.ceil(MIN_ROWS_PER_BATCH / size)):
            leaves, got, output = catcher.catch(size)
            evaluation.append(catcher.inputs(leaves, got))
            inside.append(output.float().numpy())
            row += size
        groups.append(ProbeGroup(size, start, row))
    try:
        split = Split(tuple(np.concatenate(xs) for xs in zip(*evaluation, strict=True)))
        return split, np.concatenate(inside), tuple(groups)
    except ValueError as e:
        raise WorkloadError(
            f"workload '{catcher.workload.name}': {type(catcher.block).__name__}'s arguments "
            f"change shape with the batch size ({e}); the probe needs one shape per sample"
        ) from e


def _build(workload: Workload, batch_sizes: Sequence[int], path: str, length: int) -> Probe:
    """The probe of ``length`` consecutive blocks from ``path`` ("": the whole teacher)."""
    teacher = workload.model.eval()
    blocks = block_run(teacher, path, length) if path else [teacher]
    catcher = _Catcher(workload, teacher, blocks[0], blocks[-1])
    sizes = sorted(set(batch_sizes))
    marks, spec, input_names, buffers = _signature(catcher, max(*sizes, 2), path)
    args, kwargs = pytree.tree_unflatten(marks, spec)
    target = BlockChain(blocks) if len(blocks) > 1 else blocks[0]
    module = block_probe(copy.deepcopy(target).eval(), args, kwargs, input_names, buffers)
    eval_split, inside, groups = _evaluation(catcher, sizes)
    calibration = Split(tuple(catcher.inputs(*catcher.catch(CALIBRATION_ROWS)[:2])))
    name = type(blocks[0]).__name__
    probe = Probe(
        workload=Workload(
            name=f"{workload.name}-probe",
            model=module,
            train=calibration,
            calibration=calibration,
            evaluation=eval_split,
            metric=cosine_metric,
            metric_name="cosine",
            output_kind="embedding",
            input_names=module.input_names,
            output_names=("output",),
            description=f"{name} of {workload.name} ({path or 'whole model'})",
        ),
        block=path,
        block_class=name,
        blocks=len(blocks),
        groups=groups,
        reference=run_groups(module, eval_split, groups),
        inside=inside,
        source=workload.name,
    )
    _require_faithful(probe)
    return probe


def _require_faithful(probe: Probe) -> None:
    """Raise unless the probe reproduces the block's outputs inside the model (a block that
    reads state its parent set outside its arguments would not)."""
    scale = float(np.max(np.abs(probe.inside))) or 1.0
    error = float(np.max(np.abs(probe.reference - probe.inside))) / scale
    if not error <= FAITHFUL_RTOL:
        raise WorkloadError(
            f"the {probe.label} probe does not reproduce the block's outputs inside "
            f"{probe.source} (relative error {error:.2e}); the block depends on more than its "
            "arguments"
        )


def run_groups(model: nn.Module, split: Split, groups: Sequence[ProbeGroup]) -> np.ndarray:
    """The fp32 eager outputs on ``split``, each group run at its own batch size."""
    outs = []
    with torch.inference_mode():
        for group in groups:
            for start in range(group.start, group.stop, group.batch_size):
                stop = start + group.batch_size
                outs.append(model(*(torch.from_numpy(x[start:stop]) for x in split.inputs)))
    return np.concatenate([o.float().numpy() for o in outs])


def cosine_metric(outputs: np.ndarray, split: Split, reference: np.ndarray) -> dict[str, float]:
    """The probe's metric: mean cosine similarity of each sample's outputs to the fp32 block's."""
    return {"cosine": float(np.mean(cosine_similarity(reference, outputs)))}
