"""What the self-test records for one path: a typed, JSON-serialisable record."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

#: pass: the path computes what fp32 computes, within its precision's tolerance.
#: fail: it ran and computed something else (NaN, or a cosine below the threshold).
#: refused: a technique's or the backend's ``check()`` refuses it on this host; not run.
#: inconclusive: it could not be built or run on the probe, for a reason unrelated to
#: numerics (the probe is not the model); the candidate's own verification still decides.
Status = Literal["pass", "fail", "refused", "inconclusive"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "refused", "inconclusive")


@dataclass(frozen=True)
class BatchResult:
    """The path's outputs against the fp32 probe's at one batch size."""

    batch_size: int
    #: The probe's input shapes at this batch size, e.g. ``1x128x384 + 1x1x128x128``.
    shapes: str
    samples: int
    mean_cosine: float
    min_cosine: float
    #: NaN or infinite values in the outputs.
    nonfinite: int


@dataclass(frozen=True)
class PathResult:
    """One path's self-test on this host."""

    #: :func:`autoopt.selftest.path_key` of the path: equal for every recipe on it.
    key: str
    #: ``torch_compile(max-autotune-no-cudagraphs, freezing) + static_int8(per_channel)``.
    label: str
    #: The recipe that was built (``Recipe.to_dict``).
    recipe: dict[str, Any]
    status: Status
    #: Why it failed, was refused or was inconclusive; for a pass, the numbers it met.
    reason: str
    #: "fp32", "half" or "int8": which thresholds apply.
    precision_class: str
    #: The thresholds: mean cosine (per batch size) and every sample's cosine.
    threshold_mean: float
    threshold_min: float
    #: The lowest per-batch-size mean cosine and the lowest sample cosine (None: not run).
    mean_cosine: float | None = None
    min_cosine: float | None = None
    nonfinite: int | None = None
    batches: tuple[BatchResult, ...] = ()
    #: fp32 eager's latency on the probe over this path's, at the latency batch size, in
    #: alternating rounds (information only: a probe is not the model).
    speedup: float | None = None
    seconds: float = 0.0
    #: The probe's block class (``BertLayer``; the model's class when it is the whole model).
    probe: str = ""
    #: ``AMD EPYC 9B14 (avx512_vnni, avx512_bf16, no avx512_fp16, no amx)``.
    host: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    #: Remarks beside the verdict: it ran on the whole model (and why), it wrote into its
    #: inputs.
    notes: tuple[str, ...] = ()
    #: True when this result was read from the per-host cache, not measured now.
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PathResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["batches"] = tuple(BatchResult(**b) for b in data.get("batches", ()))
        values["notes"] = tuple(data.get("notes", ()))
        return cls(**values)
