"""Experiment and search-space validation: good files load, bad files fail in one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autoopt.config import load_experiment, load_search_space
from autoopt.errors import ConfigError

GOOD_SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: {low: 0.1, high: 0.5}
  quantization.method: [none, static_int8]
  quantization.static_int8.calibration_method: [minmax, entropy]
  precision.method: [fp32]
  backend.method: [torch_eager, onnxruntime]
"""
GOOD_EXPERIMENT = """
workload: digits_cnn
search_space: space.yaml
constraint: {max_drop: 0.01}
budget: {n_trials: 5}
"""


def write(tmp_path: Path, experiment: str, space: str = GOOD_SPACE) -> Path:
    (tmp_path / "space.yaml").write_text(textwrap.dedent(space))
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(experiment))
    return path


def test_load_experiment_fills_defaults_and_name(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, GOOD_EXPERIMENT))
    assert exp.name == "exp"
    assert exp.objectives == ["accuracy", "latency_p50_ms"]
    assert exp.directions == ["maximize", "minimize"]
    assert exp.sampler.name == "tpe"
    assert exp.latency.runs >= 100
    assert list(exp.space.parameters)[0] == "pruning.method"


def test_bundled_experiments_validate(repo: Path) -> None:
    for path in sorted((repo / "experiments").glob("*.yaml")):
        # The bring-your-own-model examples read files their make_*.py script writes under
        # experiments/generated/: until it has run, the error names the field and the file.
        generated = "generated/" in path.read_text()
        if generated and not (repo / "experiments" / "generated").exists():
            with pytest.raises(
                ConfigError, match=r"\.model: (file|folder) not found: .*generated/"
            ):
                load_experiment(path)
            continue
        exp = load_experiment(path)
        assert exp.space.parameters, path


# (experiment text, space text or None for the good one, substrings the one-line error must hold)
BAD = [
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 5}\nsampler: {name: tpee}\n",
        None,
        ["exp.yaml", "sampler.name", "'tpe'", "tpee"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 5}\nobjectivs: [accuracy]\n",
        None,
        ["exp.yaml", "unknown field 'objectivs'", "did you mean 'objectives'"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nconstraint: {max_drop: -0.1}\n"
        "budget: {n_trials: 5}\n",
        None,
        ["exp.yaml", "constraint.max_drop", "-0.1"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {}\n",
        None,
        ["exp.yaml", "budget", "n_trials"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 5}\nobjectives: [accuracy, speed]\n",
        None,
        ["exp.yaml", "objectives[1]", "latency_p50_ms", "speed"],
    ),
    (
        "workload: digits_cnn\nsearch_space: missing.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 5}\n",
        None,
        ["exp.yaml", "search_space", "missing.yaml"],
    ),
    (
        "workload: no_such_workload\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 5}\n",
        None,
        ["exp.yaml", "workload.name", "digits_cnn"],
    ),
    (
        "workload: mypkg.nothere:load\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 5}\n",
        None,
        ["exp.yaml", "workload.name", "mypkg.nothere"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\n"
        "constraint: {max_drop: 0.01, mode: percent}\n"
        "budget: {n_trials: 5}\n",
        None,
        ["exp.yaml", "constraint.mode", "relative", "percent"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nconstraint: {max_drop: 0.01}\n"
        "budget: {n_trials: 0}\n",
        None,
        ["exp.yaml", "budget.n_trials", "0"],
    ),
    (
        "workload: digits_cnn\nsearch_space: space.yaml\nbudget: {n_trials: 5}\n",
        None,
        ["exp.yaml", "constraint", "missing"],
    ),
    ("workload: [digits\n", None, ["exp.yaml", "line", "YAML"]),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  pruning.method: [none, magic]\n  precision.method: fp32\n"
        "  backend.method: torch_eager\n",
        ["space.yaml", "parameters[pruning.method]", "magic", "structured"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  pruning.method: [none, structured]\n"
        "  pruning.structured.amout: {low: 0.1, high: 0.2}\n  precision.method: fp32\n"
        "  backend.method: torch_eager\n",
        ["space.yaml", "parameters[pruning.structured.amout]", "did you mean 'amount'"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  pruning.method: [none, structured]\n"
        "  pruning.structured.amount: {low: 0.5, high: 0.1}\n  precision.method: fp32\n"
        "  backend.method: torch_eager\n",
        ["space.yaml", "parameters[pruning.structured.amount]", "low"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  pruning.method: [none, structured]\n"
        "  pruning.structured.amount: {low: 0.1, high: 5.0}\n  precision.method: fp32\n"
        "  backend.method: torch_eager\n",
        ["space.yaml", "pruning.structured.amount", "5.0"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  precision.method: [fp32, fp64]\n  backend.method: torch_eager\n",
        ["space.yaml", "precision.method", "fp64", "bf16"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  precision.method: fp32\n",
        ["space.yaml", "backend.method", "required", "onnxruntime"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  backend.method: torch_eager\n  precision.method: fp32\n"
        "  pruning.method: [none, structured]\n"
        "  pruning.structured.amount: {low: 0.1, high: 0.2, when: {quantization.method: none}}\n",
        ["space.yaml", "when", "quantization.method", "not declared before"],
    ),
    (
        GOOD_EXPERIMENT,
        "parameters:\n  tuning.method: [a]\n",
        ["space.yaml", "tuning.method", "family"],
    ),
    (
        GOOD_EXPERIMENT.replace("budget: {n_trials: 5}", "budget: {n_trials: 5}\nsampler: grid"),
        "parameters:\n  pruning.method: [none, structured]\n"
        "  pruning.structured.amount: {low: 0.1, high: 0.5}\n  precision.method: fp32\n"
        "  backend.method: torch_eager\n",
        ["exp.yaml", "sampler.name", "grid", "pruning.structured.amount", "step"],
    ),
    (
        GOOD_EXPERIMENT + "seed_candidates: [{name: s, params: {pruning.method: structured}}]\n",
        None,
        ["exp.yaml", "seed_candidates[0]", "pruning.structured.amount", "must be given"],
    ),
    (
        GOOD_EXPERIMENT + "seed_candidates: [{name: s, params: {pruning.method: magic}}]\n",
        None,
        ["exp.yaml", "seed_candidates[0]", "pruning.method", "magic"],
    ),
    (
        # A seed may set what the space fixes, but only to a value the method accepts.
        GOOD_EXPERIMENT
        + "seed_candidates: [{name: s, params: {pruning.method: none, backend.method: "
        "torch_eager, quantization.method: static_int8, "
        "quantization.static_int8.calibration_method: minmax, "
        "quantization.static_int8.per_channel: maybe}}]\n",
        "parameters:\n  pruning.method: [none]\n  quantization.method: [none, static_int8]\n"
        "  quantization.static_int8.calibration_method: [minmax]\n"
        "  quantization.static_int8.per_channel: true\n  precision.method: fp32\n"
        "  backend.method: [torch_eager, onnxruntime]\n",
        ["exp.yaml", "seed_candidates[0]", "per_channel", "boolean", "maybe"],
    ),
]


@pytest.mark.parametrize(
    ("experiment", "space", "expected"), BAD, ids=[f"bad{i}" for i in range(len(BAD))]
)
def test_load_experiment_rejects_bad_file_in_one_line(
    tmp_path: Path, experiment: str, space: str | None, expected: list[str]
) -> None:
    path = write(tmp_path, experiment, space if space is not None else GOOD_SPACE)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_load_search_space_names_file_when_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"s\.yaml: \(top level\): expected a mapping"):
        load_search_space(path)
