"""A workload whose teacher is an ONNX file, served as it is.

``workload: {onnx: {model: FILE, task: TASK, data: FILE, ...}}`` (the schema:
:class:`autoopt.config._sources.OnnxSource`). The graph is the teacher: every candidate starts
from it (no re-export), the baseline is the graph on ONNX Runtime at fp32, and the methods
that need a PyTorch module (distillation, pruning, PT2E, the PyTorch backends) are refused
with the reason (:func:`autoopt.pipeline.check_recipe`).

Data is an .npz of arrays named after the graph's inputs (plus ``label`` or ``labels``), or a
table of text with a ``tokenizer`` folder, or images with an image processor folder (in
``tokenizer``). The inputs follow the graph's order and dtypes. A graph with several outputs
is cut to the one named by ``output`` (written beside the other workload assets).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from filelock import FileLock

from autoopt.artifacts import OnnxArtifact
from autoopt.config._load import parse_source
from autoopt.config._sources import SplitFiles
from autoopt.errors import ConfigError
from autoopt.workloads._base import Workload
from autoopt.workloads._data import DATA_SUFFIXES, SPLITS
from autoopt.workloads._encode import Classes, encode, pick_metric
from autoopt.workloads.huggingface import load_preprocessor, source_digest, workload_name

if TYPE_CHECKING:
    import onnx

    from autoopt.config._sources import OnnxSource

FIELD = "workload.onnx"


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _graph(path: Path) -> onnx.ModelProto:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - not an ONNX file: one line
        raise ConfigError(f"{path}: {FIELD}.model: not a readable ONNX file: {e}") from e
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise ConfigError(
            f"{path}: {FIELD}.model: keeps {len(external)} weights in external data files; "
            "autoopt needs one self-contained file: onnx.save(onnx.load(path), path, "
            "save_as_external_data=False)"
        )
    return model


def _one_output(path: Path, model: onnx.ModelProto, wanted: str | None) -> Path:
    """``path`` itself when the graph has one output (``wanted`` or any), else a copy cut to
    ``wanted`` (cached by the file's digest)."""
    outputs = [o.name for o in model.graph.output]
    if wanted is not None and wanted not in outputs:
        raise ConfigError(
            f"{path}: {FIELD}.output: the graph has no output '{wanted}'; outputs: "
            f"{', '.join(outputs)}"
        )
    if len(outputs) == 1:
        return path
    if wanted is None:
        raise ConfigError(
            f"{path}: {FIELD}.output: the graph has {len(outputs)} outputs "
            f"({', '.join(outputs)}), and autoopt scores one; name it in output"
        )
    import onnx.utils

    from autoopt.workloads import asset_dir

    target = asset_dir("onnx") / f"{path.stem}-{_digest(path)[:16]}-{wanted}.onnx"
    with FileLock(str(target) + ".lock"):
        if not target.exists():
            inputs = _inputs(model)
            tmp = target.with_suffix(".tmp.onnx")
            onnx.utils.extract_model(str(path), str(tmp), [n for n, _, _ in inputs], [wanted])
            tmp.replace(target)
    return target


def _inputs(model: onnx.ModelProto) -> list[tuple[str, np.dtype, list[int | None]]]:
    """The graph's inputs (not initializers): name, numpy dtype, dims (None where dynamic)."""
    from onnx import helper

    initializers = {i.name for i in model.graph.initializer}
    out = []
    for i in model.graph.input:
        if i.name in initializers:
            continue
        tensor = i.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
        out.append((i.name, np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type)), dims))
    return out


def _classes(model: onnx.ModelProto, source: OnnxSource) -> int | None:
    """The output's last dimension when the graph fixes it: how many classes it scores."""
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if source.output_kind != "logits" or not dims or not dims[-1].HasField("dim_value"):
        return None
    return int(dims[-1].dim_value)


def _holds_arrays(data: str | SplitFiles) -> bool:
    """Whether the data is .npz arrays (which need no tokenizer)."""
    if isinstance(data, SplitFiles):
        return all(Path(getattr(data, n)).suffix.lower() == ".npz" for n in SPLITS)
    path = Path(data)
    if path.is_dir():
        return all((path / f"{n}.npz").is_file() for n in SPLITS)
    return path.suffix.lower() == ".npz"


def load(**options: Any) -> Workload:
    """The workload of ``options`` (an :class:`~autoopt.config._sources.OnnxSource`)."""
    source: OnnxSource = parse_source("onnx", options)  # type: ignore[assignment]
    missing = source.missing_path()
    if missing is not None:
        raise ConfigError(f"{FIELD}.{missing[0]}: {missing[1]}")
    given = Path(source.model)
    model = _graph(given)
    path = _one_output(given, model, source.output)
    if path != given:
        model = _graph(path)
    inputs = _inputs(model)
    names = [n for n, _, _ in inputs]
    preprocessor = None
    if not _holds_arrays(source.data):
        if source.tokenizer is None:
            kind = "an image processor" if source.task == "image-classification" else "a tokenizer"
            raise ConfigError(
                f"{FIELD}.tokenizer: {Path(str(source.data)).name} is not .npz arrays, so it "
                f"needs {kind} folder (save_pretrained) to make the graph's inputs "
                f"{', '.join(names)}; allowed data: {', '.join(DATA_SUFFIXES)}"
            )
        preprocessor = load_preprocessor(source.task, Path(source.tokenizer), f"{FIELD}.tokenizer")
    classes = Classes(
        count=_classes(model, source),
        names=tuple(source.labels) if source.labels else None,
        hint=f"give {FIELD}.labels: the class names in the model's output order",
    )
    encoded = encode(source, FIELD, preprocessor, classes, array_names=names)
    splits = {}
    for split in SPLITS:
        arrays = encoded.inputs[split]
        for name, dtype, dims in inputs:
            if name not in arrays:
                raise ConfigError(
                    f"{FIELD}.tokenizer: the graph's input '{name}' is none of what the "
                    f"preprocessor gives ({', '.join(arrays)})"
                )
            x = arrays[name]
            fixed = {i: d for i, d in enumerate(dims) if i > 0 and d is not None}
            wrong = {i: d for i, d in fixed.items() if i >= x.ndim or x.shape[i] != d}
            if len(dims) != x.ndim or wrong:
                raise ConfigError(
                    f"{FIELD}.data: the graph's input '{name}' has shape "
                    f"{['?' if d is None else d for d in dims]}, and the data gives "
                    f"{list(x.shape)}; for text, set max_length to the graph's length and "
                    "padding: max_length"
                )
            arrays[name] = np.ascontiguousarray(x, dtype=dtype)
        splits[split] = encoded.split(split, names)
    output = model.graph.output[0].name
    return Workload(
        name=workload_name(source),
        model=OnnxArtifact(path),
        train=splits["train"],
        calibration=splits["calibration"],
        evaluation=splits["evaluation"],
        metric=pick_metric(source.metric_name),
        metric_name=source.metric_name,
        output_kind=source.output_kind,
        input_names=tuple(names),
        output_names=(output,),
        description=(
            f"{source.task}: ONNX graph {given.name}, {source.metric_name} on "
            f"{len(splits['evaluation'])} samples"
        ),
        extras={"preprocessor": preprocessor, "task": source.task},
        source_digest=source_digest(source),
    )
