"""A selection policy and its options: which accuracy bound, which latency budget, what to
optimize (see :mod:`autoopt.study.selection`, which applies it)."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, model_validator

from autoopt.config._strict import Strict
from autoopt.errors import ConfigError

if TYPE_CHECKING:
    from autoopt.study.records import StudyRecord

PolicyName = Literal["fastest", "smallest", "most-accurate", "knee"]
LatencyMetric = Literal["latency_p50_ms", "latency_p90_ms", "latency_p99_ms"]
POLICIES: tuple[str, ...] = ("fastest", "smallest", "most-accurate", "knee")
LATENCY_METRICS: tuple[str, ...] = ("latency_p50_ms", "latency_p90_ms", "latency_p99_ms")


class Policy(Strict):
    """A selection policy and its options (see the module docstring for what each means)."""

    name: PolicyName
    #: Largest accuracy drop from the baseline; None: the study's own constraint.
    max_drop: float | None = Field(default=None, ge=0.0)
    #: ``max_drop`` is a fraction of the baseline's accuracy rather than absolute points.
    relative: bool = False
    #: Latency budget in milliseconds, on ``latency_metric``.
    max_latency_ms: float | None = Field(default=None, gt=0.0)
    latency_metric: LatencyMetric = "latency_p50_ms"

    @model_validator(mode="before")
    @classmethod
    def _normalize_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            data = {**data, "name": data["name"].replace("_", "-").lower()}
        return data

    @model_validator(mode="after")
    def _options_fit_the_policy(self) -> Policy:
        if self.name in ("smallest", "most-accurate") and self.max_latency_ms is None:
            raise ValueError(f"policy '{self.name}' needs a latency budget (max_latency_ms)")
        if self.name == "fastest" and self.max_latency_ms is not None:
            raise ValueError(
                "policy 'fastest' takes no latency budget; use 'smallest' or 'most-accurate' "
                "to choose within a budget"
            )
        if self.name == "knee" and (self.max_drop is not None or self.max_latency_ms is not None):
            raise ValueError("policy 'knee' takes no options: it reads the study's feasible front")
        if self.relative and self.max_drop is None:
            raise ValueError("'relative' needs 'max_drop'")
        return self

    def accuracy_bound(self, study: StudyRecord) -> str:
        name = study.metric_name
        if self.max_drop is None:
            c = study.constraint
            if "max_drop" in c:
                return (
                    f"the study's {name} constraint (drop <= {c['max_drop']:g} "
                    f"{c.get('mode', 'absolute')})"
                )
            return f"the study's {name} constraint"
        return f"{name} drop <= {self.max_drop:g} {'relative' if self.relative else 'absolute'}"

    def describe(self, study: StudyRecord | None = None) -> str:
        acc = (
            self.accuracy_bound(study)
            if study is not None
            else (
                "the study's accuracy constraint"
                if self.max_drop is None
                else f"accuracy drop <= {self.max_drop:g}{' relative' if self.relative else ''}"
            )
        )
        lat = self.latency_metric
        if self.name == "fastest":
            return f"fastest ({lat}) within {acc}"
        if self.name == "smallest":
            return f"smallest (size_mb) with {lat} <= {self.max_latency_ms:g} ms within {acc}"
        if self.name == "most-accurate":
            return f"most accurate with {lat} <= {self.max_latency_ms:g} ms within {acc}"
        return "knee of the feasible Pareto front"


def make_policy(name: str, **options: Any) -> Policy:
    """Build a :class:`Policy` from a name and options; ConfigError in one line if invalid.

    ``None`` options are dropped, so CLI flags that were not given can be passed through.
    """
    normalized = str(name).replace("_", "-").lower()
    if normalized not in POLICIES:
        hint = difflib.get_close_matches(normalized, POLICIES, n=1)
        did = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise ConfigError(
            f"--policy: unknown policy '{name}'{did}; allowed: {', '.join(POLICIES)}"
        )
    data = {
        k: v for k, v in options.items() if v is not None and not (k == "relative" and v is False)
    }
    try:
        return Policy.model_validate({"name": normalized, **data})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        where = f"--policy {normalized}" + (f": {loc}" if loc else "")
        msg = err["msg"].removeprefix("Value error, ")
        got = f"; got {err['input']!r}" if loc else ""
        raise ConfigError(f"{where}: {msg}{got}") from e
