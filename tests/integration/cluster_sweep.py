"""Run a two-target sweep on a multi-node Ray cluster made with ray.cluster_utils.Cluster.

Started as a subprocess by test_cluster.py (a test session has one Ray; this script makes its
own cluster). Prints one JSON line: the node id of each target's node and every trial's node.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ray.cluster_utils import Cluster

import autoopt
from autoopt.errors import ConfigError
from autoopt.execution import MEASURE_SLOT

experiment, storage = Path(sys.argv[1]), sys.argv[2]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
try:
    node_a = cluster.add_node(num_cpus=1, resources={"pool_a": 1, MEASURE_SLOT: 1})
    node_b = cluster.add_node(num_cpus=1, resources={"pool_b": 1, MEASURE_SLOT: 1})
    cluster.wait_for_nodes()
    summary = autoopt.run(experiment, ray_address=cluster.address)
    out: dict = {"nodes": {"a": node_a.node_id, "b": node_b.node_id}, "trials": {}}
    for s in [summary, *summary.siblings]:
        study = autoopt.load_study(s.study_name, storage)
        out["trials"][s.target] = [
            {
                "number": t.number,
                "state": t.state,
                "node": t.node_id,
                "target": t.user_attrs.get("target"),
            }
            for t in study.trials
        ]
    # A target no node offers is refused at start-up, naming what the cluster has.
    import yaml

    data = yaml.safe_load(experiment.read_text())
    data["targets"] = [{"name": "gpu", "resources": {"GPU": 1}}]
    bad = experiment.with_name("gpu.yaml")
    bad.write_text(yaml.safe_dump(data))
    try:
        autoopt.run(bad, ray_address=cluster.address)
        out["gpu_error"] = None
    except ConfigError as e:
        out["gpu_error"] = str(e)
    print("RESULT " + json.dumps(out))
finally:
    import ray

    ray.shutdown()
    cluster.shutdown()
