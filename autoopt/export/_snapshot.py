"""What a trial was built and measured with, as the study recorded it when the trial was told.

Export rebuilds a trial from this snapshot, not from the experiment file as it is now: an
experiment edited after the sweep (another space, other plugins, other latency settings)
must not change what an old trial's bundle holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoopt.config import LatencyConfig, VerifyConfig
from autoopt.errors import ExportError
from autoopt.study import schema as S

if TYPE_CHECKING:
    from autoopt.study.records import StudyRecord, TrialRecord


@dataclass(frozen=True)
class BuildSnapshot:
    workload: str
    workload_options: dict[str, Any]
    plugins: list[str]
    latency: LatencyConfig
    verify: VerifyConfig
    seed: int
    cache_dir: str
    device: str
    sys_path: list[str] = field(default_factory=list)
    #: The study attribute it was read from (``snapshot:<digest>``, or the study's latest
    #: experiment for trials recorded before snapshots existed).
    source: str = ""


def snapshot_of(study: StudyRecord, trial: TrialRecord) -> BuildSnapshot:
    key = S.STUDY_SNAPSHOT_PREFIX + trial.snapshot
    data = study.user_attrs.get(key) if trial.snapshot else None
    if isinstance(data, dict):
        return _parse(data["experiment"], data.get("cache_dir"), data.get("device"), data, key)
    # A trial told before snapshots were recorded: the study's latest experiment.
    exp = study.user_attrs.get(S.STUDY_EXPERIMENT)
    if not isinstance(exp, dict) or "workload" not in exp:
        raise ExportError(
            f"study '{study.name}' records no experiment for trial {trial.number} (neither "
            f"'{key}' nor '{S.STUDY_EXPERIMENT}'), so it cannot be rebuilt; was it created "
            "by `autoopt run`?"
        )
    cache = study.user_attrs.get(S.STUDY_CACHE_DIR)
    return _parse(exp, cache, study.target["device"], {}, S.STUDY_EXPERIMENT)


def _parse(
    exp: dict[str, Any], cache_dir: Any, device: Any, data: dict[str, Any], source: str
) -> BuildSnapshot:
    workload = exp["workload"]
    return BuildSnapshot(
        workload=workload["name"],
        workload_options=dict(workload.get("options") or {}),
        plugins=list(exp.get("plugins") or []),
        latency=LatencyConfig.model_validate(exp.get("latency") or {}),
        verify=VerifyConfig.model_validate(exp.get("verify") or {}),
        seed=int((exp.get("sampler") or {}).get("seed") or 0),
        cache_dir=str(cache_dir or exp.get("cache_dir") or "results/cache"),
        device=str(device or "cpu"),
        sys_path=list(data.get("sys_path") or []),
        source=source,
    )
