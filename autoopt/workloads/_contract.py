"""The workload contract, checked when a workload is loaded, before anything is built.

What used to fail late (a model that returns a tuple or a ``ModelOutput``, splits of torch
tensors, a sample in both train and evaluation, inputs the model cannot run, a metric that
does not return its own name) fails here, in one line naming the field::

    workload 'mine': model: returns a SequenceClassifierOutput (fields logits), not one
    tensor; wrap it so that forward returns the tensor to score (e.g. `.logits`), or use
    workload: {huggingface: {...}}, which does

The checks run the teacher on two evaluation samples and the metric on its outputs: cheap
enough for every process that loads the workload.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from autoopt.artifacts import OnnxArtifact
from autoopt.errors import WorkloadError
from autoopt.workloads._base import Split, Workload
from autoopt.workloads._data import row_keys

SPLITS = ("train", "calibration", "evaluation")
#: Samples the teacher and the metric are tried on.
TRY_SAMPLES = 2


def check_contract(w: Workload) -> None:
    """Raise :class:`WorkloadError` (one line, naming the field) at the first breach."""
    where = f"workload '{w.name}'"
    _check_model(w, where)
    for name in SPLITS:
        _check_split(getattr(w, name), name, w, where)
    _check_disjoint(w, where)
    outputs = _run_teacher(w, where)
    _check_metric(w, outputs, where)


def _check_model(w: Workload, where: str) -> None:
    import torch

    if isinstance(w.model, OnnxArtifact):
        if not w.model.path.is_file():
            raise WorkloadError(f"{where}: model: ONNX file not found: {w.model.path}")
        return
    if not isinstance(w.model, torch.nn.Module):
        raise WorkloadError(
            f"{where}: model: is a {type(w.model).__name__}; give a torch.nn.Module whose "
            "forward returns one tensor, or an autoopt.artifacts.OnnxArtifact(path)"
        )
    w.model.eval()
    if w.output_kind not in ("logits", "embedding"):
        raise WorkloadError(
            f"{where}: output_kind: must be 'logits' or 'embedding'; got {w.output_kind!r}"
        )


def _check_split(split: Any, name: str, w: Workload, where: str) -> None:
    if not isinstance(split, Split):
        raise WorkloadError(
            f"{where}: {name}: is a {type(split).__name__}; give an autoopt.Split(inputs, targets)"
        )
    if not isinstance(split.inputs, tuple) or not split.inputs:
        raise WorkloadError(
            f"{where}: {name}.inputs: must be a non-empty tuple of numpy arrays (one per "
            f"model input); got {type(split.inputs).__name__}"
        )
    arrays = [(f"inputs[{i}]", x) for i, x in enumerate(split.inputs)]
    if split.targets is not None:
        arrays.append(("targets", split.targets))
    for label, x in arrays:
        if not isinstance(x, np.ndarray):
            hint = " (call .numpy() on it)" if type(x).__module__.startswith("torch") else ""
            raise WorkloadError(
                f"{where}: {name}.{label}: is a {type(x).__module__}.{type(x).__qualname__}, "
                f"not a numpy array{hint}"
            )
        if x.ndim == 0:
            raise WorkloadError(f"{where}: {name}.{label}: has no sample axis (a scalar)")
    lengths = {label: len(x) for label, x in arrays}
    if len(set(lengths.values())) != 1:
        raise WorkloadError(
            f"{where}: {name}: the arrays hold different numbers of samples: {lengths}"
        )
    if len(split) == 0:
        raise WorkloadError(f"{where}: {name}: is empty")
    if len(split.inputs) != len(w.input_names):
        raise WorkloadError(
            f"{where}: {name}: has {len(split.inputs)} inputs but input_names lists "
            f"{len(w.input_names)} ({', '.join(w.input_names)})"
        )


def _check_disjoint(w: Workload, where: str) -> None:
    """No sample (its inputs, byte for byte) is in two splits."""
    keys = {name: set(row_keys(list(getattr(w, name).inputs))) for name in SPLITS}
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = len(keys[a] & keys[b])
            if shared:
                raise WorkloadError(
                    f"{where}: {b}: shares {shared} of its {len(getattr(w, b))} samples with "
                    f"{a} (identical inputs); train, calibration and evaluation must be disjoint"
                )


def _shapes(inputs: tuple[np.ndarray, ...]) -> str:
    return " + ".join("x".join(map(str, x.shape)) + f" {x.dtype}" for x in inputs)


def _run_teacher(w: Workload, where: str) -> np.ndarray:
    """The teacher's outputs on the first evaluation samples, as trial 0 would compute them."""
    inputs = w.evaluation.take(TRY_SAMPLES).inputs
    n = len(inputs[0])
    if isinstance(w.model, OnnxArtifact):
        out = _run_onnx(w.model, inputs, w, where)
    else:
        out = _run_torch(w.model, inputs, where)
    if out.ndim == 0 or out.shape[0] != n:
        raise WorkloadError(
            f"{where}: model: returns shape {tuple(out.shape)} for {n} samples; its first axis "
            "must be the batch"
        )
    if not np.issubdtype(out.dtype, np.floating):
        raise WorkloadError(
            f"{where}: model: returns {out.dtype} values; autoopt compares float outputs "
            "(logits or embeddings)"
        )
    return out.astype(np.float32)


def _run_torch(model: Any, inputs: tuple[np.ndarray, ...], where: str) -> np.ndarray:
    import torch

    tensors = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)
    try:
        with torch.inference_mode():
            out = model(*tensors)
    except Exception as e:  # noqa: BLE001 - the user's model: report whatever it raised
        raise WorkloadError(
            f"{where}: model: does not run on the evaluation split's first samples "
            f"({_shapes(inputs)}): {type(e).__name__}: {_first_line(e)}"
        ) from e
    if not isinstance(out, torch.Tensor):
        raise WorkloadError(f"{where}: model: {_not_one_tensor(out)}")
    return out.detach().float().cpu().numpy()


def _not_one_tensor(out: Any) -> str:
    kind = type(out).__name__
    if isinstance(out, Mapping):  # transformers' ModelOutput is an ordered dict
        fields = ", ".join(str(k) for k in out.keys())
        what = f"a {kind} (fields {fields})"
        example = "`.logits`" if "logits" in out else f"`.{next(iter(out.keys()), 'x')}`"
    elif isinstance(out, tuple | list):
        what = f"a {kind} of {len(out)}"
        example = "`[0]`"
    else:
        what, example = f"a {kind}", "the output tensor"
    return (
        f"returns {what}, not one tensor; wrap it so that forward returns the tensor to score "
        f"(e.g. {example}), or load a Hugging Face checkpoint with workload: "
        "{huggingface: {...}}, which does"
    )


def _run_onnx(
    model: OnnxArtifact, inputs: tuple[np.ndarray, ...], w: Workload, where: str
) -> np.ndarray:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - an unreadable graph, in one line
        raise WorkloadError(
            f"{where}: model: ONNX Runtime cannot load {model.path}: {_first_line(e)}"
        ) from e
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if len(outputs) != 1:
        raise WorkloadError(
            f"{where}: model: the ONNX graph has {len(outputs)} outputs ({', '.join(outputs)}), "
            "and autoopt scores one; keep one (workload: {onnx: {output: NAME}} does)"
        )
    if list(names) != list(w.input_names):
        raise WorkloadError(
            f"{where}: input_names: are {', '.join(w.input_names)}, and the ONNX graph's "
            f"inputs are {', '.join(names)} (in that order)"
        )
    try:
        (out,) = session.run(None, dict(zip(names, inputs, strict=True)))
    except Exception as e:  # noqa: BLE001 - report whatever ONNX Runtime raised
        raise WorkloadError(
            f"{where}: model: does not run on the evaluation split's first samples "
            f"({_shapes(inputs)}): {_first_line(e)}"
        ) from e
    return np.asarray(out)


def _check_metric(w: Workload, outputs: np.ndarray, where: str) -> None:
    split = w.evaluation.take(TRY_SAMPLES)
    try:
        scores = w.metric(outputs, split, outputs)
    except Exception as e:  # noqa: BLE001 - the user's metric: report whatever it raised
        hint = (
            "; the evaluation split has no targets"
            if split.targets is None and w.output_kind == "logits"
            else ""
        )
        raise WorkloadError(
            f"{where}: metric: fails on the teacher's outputs: {type(e).__name__}: "
            f"{_first_line(e)}{hint}"
        ) from e
    if not isinstance(scores, Mapping) or w.metric_name not in scores:
        got = ", ".join(map(str, scores)) if isinstance(scores, Mapping) else type(scores).__name__
        raise WorkloadError(
            f"{where}: metric_name: the metric returns {got or 'nothing'}, without "
            f"'{w.metric_name}'"
        )


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
