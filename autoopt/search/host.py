"""The host self-test within a run: tested on the target before any candidate is built,
recorded in the study, and consulted for every candidate (:mod:`autoopt.selftest`)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from autoopt.execution import SelfTestTask, self_test
from autoopt.selftest import PathResult, refusal_reason
from autoopt.study import schema as S

if TYPE_CHECKING:
    import optuna

    from autoopt.config import Experiment, Target
    from autoopt.execution import Executor
    from autoopt.recipe import Recipe

log = logging.getLogger(__name__)


class HostCheck:
    """What the self-test found on the target, and the refusals that follow from it."""

    def __init__(self, results: list[PathResult] | None = None, error: str = "") -> None:
        self.results = results or []
        self.error = error

    @classmethod
    def run(cls, exp: Experiment, target: Target, executor: Executor) -> HostCheck:
        if not exp.execution.self_test:
            return cls()
        task = SelfTestTask(
            workload=exp.workload.name,
            workload_options=dict(exp.workload.options),
            space=exp.space.model_dump(mode="json"),
            latency=exp.latency.model_dump(),
            verify=exp.verify.model_dump(),
            plugins=list(exp.plugins),
            sys_path=[os.getcwd(), *sys.path],
            device=target.device,
        )
        try:
            found = executor.call(self_test, task, timeout_s=exp.execution.self_test_timeout_s)
        except Exception as e:  # noqa: BLE001 - the sweep goes on; each trial still verifies
            log.warning("the host self-test did not complete: %s", e)
            return cls(error=f"{type(e).__name__}: {e}")
        return cls([PathResult.from_dict(r) for r in found])

    def refusal(self, recipe: Recipe) -> str | None:
        return refusal_reason(self.results, recipe) if self.results else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.results:
            out[r.status] = out.get(r.status, 0) + 1
        return out

    def record(self, study: optuna.Study) -> None:
        """Keep what was found, per host, in the study: which paths the sweep trusted."""
        if not self.results:
            return
        host = self.results[0].host
        digest = hashlib.sha256(json.dumps(host, default=str).encode()).hexdigest()[:12]
        study.set_user_attr(
            S.STUDY_SELFTEST_PREFIX + digest,
            {
                "host": host,
                "versions": self.results[0].versions,
                "paths": [_compact(r) for r in self.results],
            },
        )


def _compact(r: PathResult) -> dict[str, Any]:
    return {
        "path": r.label,
        "status": r.status,
        "mean_cosine": r.mean_cosine,
        "min_cosine": r.min_cosine,
        "speedup": r.speedup,
        "reason": r.reason,
    }
