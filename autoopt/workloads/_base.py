"""The workload contract: a trained model, its data splits, its metric and its student factory.

A user workload is a function ``package.module:function`` that takes keyword options (the
experiment's ``workload.options``) and returns a :class:`Workload`. It is called once by the
controller and once in every worker process, so it must be deterministic and cheap after its
first call (cache what it trains or downloads).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from autoopt.artifacts import OnnxArtifact, TorchArtifact

if TYPE_CHECKING:
    import torch

    from autoopt.artifacts import Artifact, ArtifactKind


@dataclass(frozen=True)
class Split:
    """Model inputs (one array per model input, first axis = samples) and optional targets.

    ``groups`` names, per sample, the group it belongs to (a source of text, a customer, a
    domain): a metric may then report each group and hold the worst one to the floor
    (:func:`autoopt.workloads.grouped_fidelity`).
    """

    inputs: tuple[np.ndarray, ...]
    targets: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])

    def take(self, n: int) -> Split:
        return Split(
            tuple(x[:n] for x in self.inputs),
            None if self.targets is None else self.targets[:n],
            None if self.groups is None else self.groups[:n],
        )

    def batches(self, batch_size: int) -> Iterator[tuple[tuple[np.ndarray, ...], Any]]:
        for start in range(0, len(self), batch_size):
            end = start + batch_size
            targets = None if self.targets is None else self.targets[start:end]
            yield tuple(x[start:end] for x in self.inputs), targets

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for x in self.inputs:
            h.update(np.ascontiguousarray(x).tobytes())
        if self.targets is not None:
            h.update(np.ascontiguousarray(self.targets).tobytes())
        if self.groups is not None:  # only where set: a split without groups keeps its print
            h.update("\n".join(map(str, self.groups)).encode())
        return h.hexdigest()[:16]


#: metric(outputs, split, teacher_outputs) -> {metric_name: value, ...extra metrics}
Metric = Callable[[np.ndarray, Split, np.ndarray], Mapping[str, float]]


@dataclass
class Workload:
    """Everything autoopt needs to know about the user's model and task.

    ``train`` is used for distillation and recovery fine-tuning, ``calibration`` for static
    quantization, ``evaluation`` only to score candidates; the three must be disjoint.

    The teacher (``model``) is a PyTorch module returning one tensor, or an ONNX graph
    (:class:`~autoopt.artifacts.OnnxArtifact`) served as it is: its candidates start from the
    graph, its baseline is the graph on ONNX Runtime, and the methods that need a PyTorch
    module are refused (:attr:`teacher_kind`).
    """

    name: str
    #: The trained fp32 teacher: a module whose ``forward`` returns one tensor, or a
    #: self-contained ONNX file whose first output is the one scored.
    model: torch.nn.Module | OnnxArtifact
    train: Split
    calibration: Split
    evaluation: Split
    metric: Metric
    metric_name: str = "accuracy"
    #: "logits": classification outputs (KD uses soft targets + labels);
    #: "embedding": vectors compared by cosine similarity with the teacher's.
    output_kind: Literal["logits", "embedding"] = "logits"
    input_names: tuple[str, ...] = ("input",)
    output_names: tuple[str, ...] = ("output",)
    #: ONNX dynamic axes; default: axis 0 (batch) of every input and output.
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None
    #: Builds an untrained, smaller student from the distillation method's config.
    make_student: Callable[[Mapping[str, Any]], torch.nn.Module] | None = None
    #: Training only: drops the padding every sample of a batch shares, leaving the model's
    #: outputs unchanged (e.g. token positions past the batch's longest sentence).
    trim_batch: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None
    #: Training only: ``features(model, inputs) -> (outputs, features, mask)``, per-position
    #: features (batch, positions, dim) a student matches to the teacher's where ``mask``
    #: (batch, positions) is true; distillation's ``feature_weight`` weighs that loss.
    features: (
        Callable[
            [torch.nn.Module, tuple[torch.Tensor, ...]],
            tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        ]
        | None
    ) = None
    #: Training only: ``layer_features(model, inputs) -> (outputs, features, mask, states,
    #: layers)``, what ``features`` returns plus the hidden states after each of the model's
    #: layers and which teacher layer each stands for (a layer-dropped student's kept indices;
    #: the teacher's own are 0..n-1); distillation's ``layer_weight`` matches a student's
    #: states to those of the teacher's layers.
    layer_features: (
        Callable[
            [torch.nn.Module, tuple[torch.Tensor, ...]],
            tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor], list[int]],
        ]
        | None
    ) = None
    description: str = ""
    #: Real inputs at the shape latency is timed at, when the evaluation split's are not (a
    #: sentence padded to 128 tokens times differently on an engine that skips padding than
    #: 128 real tokens do); :meth:`latency_inputs` draws from them. Never scored, and never
    #: traced: a tracer may specialize on them (an attention mask of ones is dropped).
    latency_split: Split | None = None
    #: What the model's inputs hold and how raw data becomes them (scaling, tokenization):
    #: an exported bundle's README tells its user, who feeds it data the workload never saw.
    input_description: str = ""
    #: Arbitrary workload-specific objects techniques may use (e.g. a tokenizer).
    extras: dict[str, Any] = field(default_factory=dict)
    #: What the teacher was made from beyond its weights and the data (a checkpoint's config,
    #: the task it was wrapped for), folded into :attr:`version` where set.
    source_digest: str = ""
    _version: str = ""
    _model_code: str = ""

    @property
    def teacher_kind(self) -> ArtifactKind:
        """What every candidate starts from: ``"torch"`` or ``"onnx"``."""
        return "onnx" if isinstance(self.model, OnnxArtifact) else "torch"

    def teacher(self) -> Artifact:
        """The teacher as the first stage's artifact."""
        if isinstance(self.model, OnnxArtifact):
            return self.model
        return TorchArtifact(self.model)

    @property
    def version(self) -> str:
        """Fingerprint of the teacher's weights and the data: the stage cache's namespace."""
        if not self._version:
            h = hashlib.sha256(self.name.encode())
            if isinstance(self.model, OnnxArtifact):
                with open(self.model.path, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        h.update(block)
            else:
                for tensor in self.model.state_dict().values():
                    h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            for split in (self.train, self.calibration, self.evaluation):
                h.update(split.fingerprint().encode())
            # Only where set, so that workloads without them keep their version: the shapes
            # exported graphs accept, and what latency is timed on.
            if self.dynamic_axes is not None:
                h.update(repr(sorted(self.onnx_dynamic_axes().items())).encode())
            if self.latency_split is not None:
                h.update(self.latency_split.fingerprint().encode())
            if self.source_digest:
                h.update(self.source_digest.encode())
            self._version = h.hexdigest()[:16]
        return self._version

    @property
    def model_code(self) -> str:
        """Fingerprint of the teacher's code and configuration (its module classes' source,
        its Hugging Face config): what cached teacher results are keyed by with the version."""
        if not self._model_code:
            from autoopt.fingerprint import model_fingerprint

            # An ONNX graph is its own code, and its bytes are already in the version.
            self._model_code = (
                "onnx-graph"
                if isinstance(self.model, OnnxArtifact)
                else model_fingerprint(self.model)
            )
        return self._model_code

    def example_inputs(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """A batch of real evaluation inputs of the given size (tiled if the split is small):
        what exporters trace with."""
        n = len(self.evaluation)
        idx = np.arange(batch_size) % n
        return tuple(x[idx] for x in self.evaluation.inputs)

    def latency_inputs(self, batch_size: int) -> tuple[np.ndarray, ...]:
        """A batch to time latency on: from the latency split where the workload has one,
        else :meth:`example_inputs`."""
        if self.latency_split is None:
            return self.example_inputs(batch_size)
        idx = np.arange(batch_size) % len(self.latency_split)
        return tuple(x[idx] for x in self.latency_split.inputs)

    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        if self.dynamic_axes is not None:
            return {k: dict(v) for k, v in self.dynamic_axes.items()}
        return {name: {0: "batch"} for name in (*self.input_names, *self.output_names)}

    def agreement(self, reference: np.ndarray, outputs: np.ndarray) -> float:
        """How far a candidate agrees with the teacher: top-1 match rate or mean cosine."""
        if self.output_kind == "logits":
            return float(np.mean(reference.argmax(-1) == outputs.argmax(-1)))
        return float(np.mean(cosine_similarity(reference, outputs)))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.sum(a * b, axis=1) / np.maximum(denom, 1e-12)


def top1_accuracy(
    outputs: np.ndarray, split: Split, teacher_outputs: np.ndarray
) -> dict[str, float]:
    """Metric for classification workloads; also reports agreement with the teacher."""
    assert split.targets is not None  # noqa: S101 - the workload author's contract, not user input
    return {
        "accuracy": float(np.mean(outputs.argmax(-1) == split.targets)),
        "teacher_agreement": float(np.mean(outputs.argmax(-1) == teacher_outputs.argmax(-1))),
    }


def predict_torch(
    model: torch.nn.Module,
    split: Split,
    batch_size: int = 256,
    trim: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
) -> np.ndarray:
    """Run a PyTorch model over a split in fp32 and return the stacked outputs; ``trim`` (a
    workload's ``trim_batch``) first drops the padding each batch shares."""
    import torch

    outs = []
    with torch.inference_mode():
        for inputs, _ in split.batches(batch_size):
            batch = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs)
            out = model(*(trim(batch) if trim is not None else batch))
            outs.append(out.float().cpu().numpy())
    return np.concatenate(outs)
