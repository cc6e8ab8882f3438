"""Select, export, verify and load, end to end: a real small sweep per bundled workload.

Each workload is one entry of ``CASES``; every test here runs for each entry. One sweep per
workload (module scope: Ray trials are the slow part), then each test exports what it needs
from that study into its own folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import sqlite3
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from typer.testing import CliRunner

import autoopt
from autoopt.cache import StageCache
from autoopt.errors import BackendUnavailableError, ConfigError, ExportError
from autoopt.export import DEFAULT_ACCURACY_TOLERANCE, ExportResult
from autoopt.study.records import StudyRecord, TrialRecord
from autoopt.workloads import load_workload


@dataclass(frozen=True)
class Case:
    """One bundled workload: its tiny search space and how its best trial is chosen."""

    workload: str
    space: str
    options: dict[str, Any] = field(default_factory=dict)
    n_trials: int = 3
    max_drop: float = 0.02
    #: autoopt.select / autoopt.export keywords that pick "the best feasible trial".
    policy: dict[str, Any] = field(default_factory=lambda: {"policy": "fastest"})


DIGITS_SPACE = """
parameters:
  pruning.method: [none, structured]
  pruning.structured.amount: 0.25
  pruning.structured.recovery_steps: 50
  precision.method: fp32
  backend.method: onnxruntime
"""

CASES = [
    pytest.param(Case("digits_cnn", DIGITS_SPACE), id="digits_cnn"),
    # pytest.param(Case("minilm", MINILM_SPACE, options={...}), id="minilm"),
]


@dataclass
class Swept:
    case: Case
    root: Path
    storage: str
    study: StudyRecord

    @property
    def name(self) -> str:
        return self.study.name

    @property
    def cache(self) -> StageCache:
        return StageCache(self.root / "cache")

    def reload(self) -> StudyRecord:
        return autoopt.load_study(self.name, self.storage)


@pytest.fixture(scope="module", params=CASES)
def swept(request: pytest.FixtureRequest, ray_session, tmp_path_factory) -> Swept:
    """One small real sweep (``autoopt.run``, Ray, SQLite, stage cache) per workload."""
    case: Case = request.param
    root = tmp_path_factory.mktemp(f"export-{case.workload}")
    (root / "space.yaml").write_text(textwrap.dedent(case.space))
    exp = root / "exp.yaml"
    exp.write_text(
        textwrap.dedent(
            f"""
            workload: {{name: {case.workload}, options: {json.dumps(case.options)}}}
            search_space: space.yaml
            constraint: {{max_drop: {case.max_drop}}}
            budget: {{n_trials: {case.n_trials}}}
            sampler: {{name: random, seed: 3}}
            latency: {{batch_size: 1, threads: 1, warmup: 3, runs: 20}}
            execution: {{workers: 2, trial_timeout_s: 240}}
            storage: sqlite:///{root}/study.db
            cache_dir: {root}/cache
            results_dir: {root}/results
            """
        )
    )
    autoopt.run(exp, write_results=False)
    storage = f"sqlite:///{root}/study.db"
    return Swept(case, root, storage, autoopt.load_study("exp", storage))


@pytest.fixture(scope="module")
def exported(swept: Swept, tmp_path_factory) -> ExportResult:
    """The best feasible trial by the workload's policy, exported once for several tests."""
    out = tmp_path_factory.mktemp("bundle") / swept.case.workload
    return autoopt.export(swept.name, swept.storage, out=out, **swept.case.policy)


def _backend(t: TrialRecord) -> str:
    return (t.recipe or {}).get("backend", {}).get("key", "")


# ---- export by policy, reload, reproduce ------------------------------------------------------


def test_export_best_feasible_by_policy_reloads_with_recorded_accuracy(
    swept: Swept, exported
) -> None:
    selection = autoopt.select(swept.name, swept.storage, **swept.case.policy)
    assert selection.found and selection.trial.feasible, selection.summary()
    assert exported.trial == selection.trial.number
    recorded = selection.trial.metrics["accuracy"]

    runner = autoopt.load(exported.directory)
    scores = runner.evaluate()
    assert abs(scores[runner.metric_name] - recorded) <= DEFAULT_ACCURACY_TOLERANCE
    v = exported.verification
    assert v.passed and abs(v.accuracy_measured - recorded) <= v.accuracy_tolerance
    assert v.latency_ratio > 0 and v.runs == 20
    # The runner takes the workload's inputs, by position or by name.
    example = runner.example_inputs()
    np.testing.assert_allclose(runner(*example), runner.example_outputs(), rtol=1e-5, atol=1e-6)
    named = dict(zip(runner.input_names, example, strict=True))
    np.testing.assert_allclose(runner(**named), runner.example_outputs(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="input"):
        runner()


def test_manifest_records_recipe_metrics_versions_hardware_signature_and_hashes(
    swept: Swept, exported
) -> None:
    m = json.loads((exported.directory / "manifest.json").read_text())
    t = next(t for t in swept.study.trials if t.number == exported.trial)
    assert m["study"]["name"] == swept.name and m["study"]["trial"] == t.number
    assert m["study"]["selection"]["policy"]["name"] == swept.case.policy["policy"]
    assert m["recipe"] == t.recipe and m["recipe_str"] == t.recipe_str
    assert m["metrics"]["accuracy"] == t.metrics["accuracy"]
    assert m["backend"]["key"] == _backend(t)
    assert m["backend"]["device"] == "cpu"  # the study's target: the local CPU
    assert m["measured_on"]["cpu_model"] == t.hardware["cpu_model"]
    assert {"torch", "onnxruntime", "onnx", "numpy", "python", "autoopt"} <= set(m["versions"])
    assert m["workload"]["name"] == swept.case.workload
    names = [i["name"] for i in m["signature"]["inputs"]]
    assert names == m["workload"]["input_names"]
    assert m["signature"]["outputs"][0]["name"] == m["workload"]["output_names"][0]
    assert m["verification"]["passed"] is True
    assert m["build"]["same_artifact_key"] is True
    files = {
        p.relative_to(exported.directory).as_posix()
        for p in exported.directory.rglob("*")
        if p.is_file()
    }
    assert set(m["files"]) == files - {"manifest.json"}
    assert {m["model"]["file"], "README.md", "example_inputs.npz"} <= set(m["files"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in m["files"].values())


def test_readme_snippet_runs(exported) -> None:
    readme = (exported.directory / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)
    assert code, readme
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code.group(1), "README.md", "exec"), {})  # noqa: S102 - our own snippet
    shape, diff = buffer.getvalue().rsplit(" ", 1)
    assert float(diff) < 1e-5, buffer.getvalue()


def test_export_torch_trial_reloads(swept: Swept, tmp_path: Path) -> None:
    """The baseline runs on PyTorch eager: exported as an ExportedProgram (or the pickle)."""
    base = swept.study.baseline
    assert base is not None
    result = autoopt.export(swept.name, swept.storage, out=tmp_path / "b", trial=base.number)
    m = result.manifest
    assert m["model"]["format"] in ("exported_program", "pickled_module")
    if swept.case.workload == "digits_cnn":  # a plain CNN: torch.export handles it
        assert (
            m["model"]["format"] == "exported_program" and (tmp_path / "b" / "model.pt2").is_file()
        )
    runner = autoopt.load(tmp_path / "b")
    score = runner.evaluate()[runner.metric_name]
    assert abs(score - base.metrics["accuracy"]) <= DEFAULT_ACCURACY_TOLERANCE
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="no CUDA device"):
            autoopt.load(tmp_path / "b", device="cuda")


# ---- tampering --------------------------------------------------------------------------------


def test_load_refuses_tampered_bundle(exported, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(exported.directory, bundle)
    model_file = json.loads((bundle / "manifest.json").read_text())["model"]["file"]
    autoopt.load(bundle)  # intact: loads

    data = bytearray((bundle / model_file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / model_file).write_bytes(bytes(data))
    with pytest.raises(ExportError, match=rf"{re.escape(model_file)}: SHA-256 mismatch") as info:
        autoopt.load(bundle)
    assert "\n" not in str(info.value) and str(bundle / model_file) in str(info.value)

    shutil.rmtree(bundle)
    shutil.copytree(exported.directory, bundle)
    (bundle / "README.md").write_text("edited\n")
    with pytest.raises(ExportError, match=r"README\.md: SHA-256 mismatch"):
        autoopt.load(bundle)

    shutil.rmtree(bundle)
    shutil.copytree(exported.directory, bundle)
    (bundle / "example_outputs.npy").unlink()
    with pytest.raises(ExportError, match=r"example_outputs\.npy: missing"):
        autoopt.load(bundle)

    shutil.rmtree(bundle)
    shutil.copytree(exported.directory, bundle)
    (bundle / "extra.bin").write_bytes(b"x")
    with pytest.raises(ExportError, match=r"extra\.bin: not listed in manifest\.json"):
        autoopt.load(bundle)

    with pytest.raises(ExportError, match="not an autoopt bundle"):
        autoopt.load(tmp_path)


# ---- Triton -----------------------------------------------------------------------------------


def _triton_model_config() -> Any:
    """Triton's ``inference.ModelConfig``, the subset a config.pbtxt for ONNX uses.

    Field names, numbers and enum values follow Triton's ``model_config.proto``; parsing
    with it rejects any field or enum value that Triton's parser would not know.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(
        name="autoopt_test_model_config.proto", package="inference", syntax="proto3"
    )
    dtype = f.enum_type.add(name="DataType")
    for i, n in enumerate(
        [
            "INVALID",
            "BOOL",
            "UINT8",
            "UINT16",
            "UINT32",
            "UINT64",
            "INT8",
            "INT16",
            "INT32",
            "INT64",
            "FP16",
            "FP32",
            "FP64",
            "STRING",
            "BF16",
        ]
    ):
        dtype.value.add(name=f"TYPE_{n}", number=i)

    def msg(name: str, *fields: tuple[str, int, int, int, str]) -> Any:
        m = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name
        return m

    one, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg(
        "ModelInput",
        ("name", 1, F.TYPE_STRING, one, ""),
        ("data_type", 2, F.TYPE_ENUM, one, ".inference.DataType"),
        ("dims", 4, F.TYPE_INT64, rep, ""),
    )
    msg(
        "ModelOutput",
        ("name", 1, F.TYPE_STRING, one, ""),
        ("data_type", 2, F.TYPE_ENUM, one, ".inference.DataType"),
        ("dims", 3, F.TYPE_INT64, rep, ""),
        ("label_filename", 4, F.TYPE_STRING, one, ""),
    )
    group = msg(
        "ModelInstanceGroup",
        ("name", 1, F.TYPE_STRING, one, ""),
        ("count", 2, F.TYPE_INT32, one, ""),
        ("gpus", 3, F.TYPE_INT32, rep, ""),
        ("kind", 4, F.TYPE_ENUM, one, ".inference.ModelInstanceGroup.Kind"),
    )
    kind = group.enum_type.add(name="Kind")
    for i, n in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=n, number=i)
    msg(
        "ModelDynamicBatching",
        ("preferred_batch_size", 1, F.TYPE_INT32, rep, ""),
        ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, one, ""),
    )
    msg("ModelParameter", ("string_value", 1, F.TYPE_STRING, one, ""))
    config = msg(
        "ModelConfig",
        ("name", 1, F.TYPE_STRING, one, ""),
        ("platform", 2, F.TYPE_STRING, one, ""),
        ("max_batch_size", 4, F.TYPE_INT32, one, ""),
        ("input", 5, F.TYPE_MESSAGE, rep, ".inference.ModelInput"),
        ("output", 6, F.TYPE_MESSAGE, rep, ".inference.ModelOutput"),
        ("instance_group", 7, F.TYPE_MESSAGE, rep, ".inference.ModelInstanceGroup"),
        ("dynamic_batching", 11, F.TYPE_MESSAGE, one, ".inference.ModelDynamicBatching"),
        ("parameters", 14, F.TYPE_MESSAGE, rep, ".inference.ModelConfig.ParametersEntry"),
        ("backend", 17, F.TYPE_STRING, one, ""),
    )
    entry = config.nested_type.add(name="ParametersEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=one)
    entry.field.add(
        name="value",
        number=2,
        type=F.TYPE_MESSAGE,
        label=one,
        type_name=".inference.ModelParameter",
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


_TRITON_TYPES = {
    "FLOAT": "TYPE_FP32",
    "FLOAT16": "TYPE_FP16",
    "INT64": "TYPE_INT64",
    "INT32": "TYPE_INT32",
    "BOOL": "TYPE_BOOL",
    "INT8": "TYPE_INT8",
    "UINT8": "TYPE_UINT8",
}


def test_triton_layout_matches_onnx_graph(swept: Swept, tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort
    from google.protobuf import text_format

    onnx_trials = [
        t for t in swept.study.trials if t.feasible and _backend(t) == "backend.onnxruntime"
    ]
    assert onnx_trials, "the case's space must produce a feasible onnxruntime trial"
    t = min(onnx_trials, key=lambda t: t.metrics["latency_p50_ms"])
    result = autoopt.export(
        swept.name,
        swept.storage,
        out=tmp_path / "b",
        trial=t.number,
        triton=True,
        triton_name="my model",
    )
    folder = tmp_path / "b" / "triton" / "my_model"
    assert result.triton == folder
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "1/model.onnx",
        "config.pbtxt",
    ]
    assert (folder / "1" / "model.onnx").read_bytes() == (
        tmp_path / "b" / "model.onnx"
    ).read_bytes()

    config = text_format.Parse((folder / "config.pbtxt").read_text(), _triton_model_config()())
    assert config.name == "my_model" and config.platform == "onnxruntime_onnx"
    graph = onnx.load(str(folder / "1" / "model.onnx")).graph
    initializers = {i.name for i in graph.initializer}
    graph_inputs = [i for i in graph.input if i.name not in initializers]
    batched = config.max_batch_size > 0
    assert batched and config.HasField("dynamic_batching")
    enum = (
        config.DESCRIPTOR.fields_by_name["input"]
        .message_type.fields_by_name["data_type"]
        .enum_type
    )
    for declared, actual in [
        *zip(config.input, graph_inputs, strict=True),
        *zip(config.output, graph.output, strict=True),
    ]:
        assert declared.name == actual.name
        tensor = actual.type.tensor_type
        elem = onnx.TensorProto.DataType.Name(tensor.elem_type)
        assert enum.values_by_number[declared.data_type].name == _TRITON_TYPES[elem]
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        assert dims[0] == -1, "the batch axis must be dynamic in the graph"
        assert list(declared.dims) == dims[1:]
    params = {k: v.string_value for k, v in config.parameters.items()}
    assert params["intra_op_thread_count"] == "1"

    # Dynamic batch for real: the repository's model runs on a batch of 3.
    runner = autoopt.load(tmp_path / "b")
    session = ort.InferenceSession(
        str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = [np.concatenate([a, a, a])[:3] for a in runner.example_inputs()]
    feed = {i.name: a for i, a in zip(config.input, x, strict=True)}
    out = session.run([config.output[0].name], feed)[0]
    assert out.shape[0] == 3
    np.testing.assert_allclose(out, runner(*x), rtol=1e-5, atol=1e-5)


def test_triton_refused_for_torch_bundle(swept: Swept, tmp_path: Path) -> None:
    base = swept.study.baseline
    with pytest.raises(ConfigError, match="--triton: .*ONNX and OpenVINO bundles"):
        autoopt.export(
            swept.name, swept.storage, out=tmp_path / "b", trial=base.number, triton=True
        )
    assert not (tmp_path / "b").exists()


# ---- eviction, failed verification ----------------------------------------------------------


def test_export_rebuilds_evicted_stages_and_still_verifies(swept: Swept, tmp_path: Path) -> None:
    t = max((t for t in swept.study.trials if t.feasible), key=lambda t: len(t.stages))
    keys = {e["key"]: e["stage"] for e in t.stages}
    assert keys, "the case's space must produce a feasible trial with cached stages"
    cache = swept.cache
    for key in keys:
        cache.evict(key)
    assert all(cache.lookup(k) is None for k in keys)

    result = autoopt.export(swept.name, swept.storage, out=tmp_path / "b", trial=t.number)
    assert sorted(result.rebuilt) == sorted(keys.values())
    assert result.reused == []
    assert result.verification.passed
    assert abs(result.verification.accuracy_difference) <= DEFAULT_ACCURACY_TOLERANCE
    assert result.manifest["build"]["artifact_key"] == t.artifact_key
    assert all(cache.lookup(k) is not None for k in keys)  # published again


def _copy_of_the_study(swept: Swept, tmp_path: Path) -> str:
    """A copy of the module's study database, for a test that edits it. The study file is in
    WAL mode: a consistent copy goes through SQLite, not the file system."""
    db = tmp_path / "study.db"
    with sqlite3.connect(swept.root / "study.db") as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    return f"sqlite:///{db}"


def test_export_fails_loudly_when_accuracy_differs(swept: Swept, tmp_path: Path) -> None:
    storage = _copy_of_the_study(swept, tmp_path)
    chosen = autoopt.select(swept.name, storage, **swept.case.policy).trial
    raw = optuna.load_study(study_name=swept.name, storage=storage)
    trial_id = next(t._trial_id for t in raw.get_trials() if t.number == chosen.number)
    wrong = chosen.metrics["accuracy"] - 0.05
    # Optuna refuses to edit a finished trial; the recorded value is rewritten in SQL.
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as conn:
        changed = conn.execute(
            "UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = ?",
            (json.dumps(wrong), trial_id, "accuracy"),
        ).rowcount
    assert changed == 1
    assert (
        autoopt.load_study(swept.name, storage).trials[chosen.number].metrics["accuracy"] == wrong
    )

    out = tmp_path / "b"
    with pytest.raises(ExportError, match=r"scores accuracy .* but the study recorded") as info:
        autoopt.export(swept.name, storage, out=out, trial=chosen.number)
    assert f"{wrong:.4f}" in str(info.value) and "tolerance 0.005" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob(".b.export-*"))


def test_export_rebuilds_an_old_trial_with_the_settings_it_was_measured_with(
    swept: Swept, tmp_path: Path
) -> None:
    storage = _copy_of_the_study(swept, tmp_path)
    raw = optuna.load_study(study_name=swept.name, storage=storage)
    # The experiment file changed after the sweep, and a later run recorded it: another seed,
    # other latency settings, a plugin that no longer imports.
    exp = dict(raw.user_attrs["experiment"])
    exp["sampler"] = {**exp["sampler"], "seed": 11}
    exp["latency"] = {**exp["latency"], "batch_size": 7, "runs": 10}
    exp["plugins"] = ["no_such_plugin_module"]
    raw.set_user_attr("experiment", exp)
    trained = [t for t in swept.study.trials if t.feasible and t.technique("pruning") != "none"]
    assert trained, "the case's space must train a feasible pruned model (recovery)"
    t = trained[0]
    assert t.snapshot, "every measured trial names the snapshot it was built with"

    # An empty stage cache: everything, recovery training included, is built again.
    result = autoopt.export(
        swept.name, storage, out=tmp_path / "b", trial=t.number, cache_dir=tmp_path / "fresh"
    )
    assert result.reused == [] and result.rebuilt
    m = result.manifest
    assert m["study"]["snapshot"] == f"snapshot:{t.snapshot}"
    assert m["seed"] == 3 and m["latency_settings"]["batch_size"] == 1
    assert m["build"]["same_artifact_key"]
    assert abs(result.verification.accuracy_difference) <= DEFAULT_ACCURACY_TOLERANCE


def test_export_refuses_a_study_measured_with_another_teacher(
    swept: Swept, tmp_path: Path
) -> None:
    storage = _copy_of_the_study(swept, tmp_path)
    raw = optuna.load_study(study_name=swept.name, storage=storage)
    here = raw.user_attrs["workload_version"]  # recorded when the sweep created the study
    assert here == load_workload(swept.case.workload, swept.case.options).version
    raw.set_user_attr("workload_version", "0123456789abcdef")
    out = tmp_path / "b"
    with pytest.raises(ExportError, match="measured with version 0123456789abcdef") as info:
        autoopt.export(swept.name, storage, out=out, trial=0)
    assert f"version {here}" in str(info.value) and not out.exists()


def test_export_refuses_unknown_trial_and_non_empty_out(swept: Swept, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no trial 999"):
        autoopt.export(swept.name, swept.storage, out=tmp_path / "b", trial=999)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        autoopt.export(swept.name, swept.storage, out=tmp_path / "full", trial=0)
    with pytest.raises(ConfigError, match="either --trial N or --policy"):
        autoopt.export(swept.name, swept.storage, out=tmp_path / "b")


# ---- the CLI ----------------------------------------------------------------------------------


def test_cli_best_and_export(swept: Swept, tmp_path: Path) -> None:
    from autoopt.cli import app

    cli = CliRunner()
    base = ["--study", swept.name, "--storage", swept.storage]
    ok = cli.invoke(app, ["best", *base, "--policy", "knee", "--format", "json"])
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.stdout)
    assert payload["found"] and payload["trial"]["feasible"]

    none = cli.invoke(app, ["best", *base, "--policy", "smallest", "--max-latency-ms", "1e-6"])
    assert none.exit_code == 1
    assert "no trial of study" in none.stdout and "slower" in none.stdout

    bad = cli.invoke(app, ["best", *base, "--policy", "fastes"])
    assert bad.exit_code == 2 and "did you mean 'fastest'" in bad.output

    args = [
        "export",
        *base,
        "--policy",
        "fastest",
        "--max-drop",
        "0.05",
        "--out",
        str(tmp_path / "b"),
    ]
    done = cli.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "re-measured" in done.stdout and (tmp_path / "b" / "manifest.json").is_file()
    again = cli.invoke(app, args)
    assert again.exit_code == 2 and "not empty" in again.output


# ---- PyTorch module that torch.export cannot handle (no sweep needed) ----------------------


def test_torch_module_torch_export_cannot_handle_falls_back_to_pickle(
    digits, tmp_path: Path
) -> None:
    import copy
    import warnings

    import torch

    from autoopt.export._files import _write_torch
    from autoopt.export.bundle import _load_artifact

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.ao.quantization import quantize_dynamic

        quantized = quantize_dynamic(
            copy.deepcopy(digits.model), {torch.nn.Linear}, dtype=torch.qint8
        )
    info = _write_torch(quantized, digits, tmp_path)
    assert info["format"] == "pickled_module" and info["file"] == "model.pt"
    assert info["code_reference"] == "autoopt.workloads.digits_cnn:DigitsCNN"
    assert info["fallback_reason"].startswith("torch.export failed")
    assert not (tmp_path / "model.pt2").exists()
    model = _load_artifact(tmp_path, {"model": info}).model
    x = torch.from_numpy(digits.example_inputs(5)[0])
    with torch.inference_mode():
        torch.testing.assert_close(model(x), quantized(x))


@pytest.mark.parametrize(
    ("shape", "max_batch", "dims"),
    [
        (["batch", "sequence"], 64, [-1]),  # dynamic batch, another dynamic axis: -1
        ([2, 3], 0, [2, 3]),  # static batch: no batching, full shape
    ],
)
def test_triton_config_for_graph_shapes(
    tmp_path: Path, shape: list, max_batch: int, dims: list
) -> None:
    import onnx
    from google.protobuf import text_format
    from onnx import TensorProto, helper

    from autoopt.export.triton import write_model_repository

    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["out"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "m.onnx"))
    folder = write_model_repository(tmp_path / "m.onnx", tmp_path / "repo", "m", threads=None)
    config = text_format.Parse((folder / "config.pbtxt").read_text(), _triton_model_config()())
    assert config.max_batch_size == max_batch
    assert config.HasField("dynamic_batching") == (max_batch > 0)
    assert list(config.input[0].dims) == dims and list(config.output[0].dims) == dims
    enum = config.DESCRIPTOR.fields_by_name["input"].message_type.fields_by_name["data_type"]
    assert enum.enum_type.values_by_number[config.input[0].data_type].name == "TYPE_INT64"
    assert not config.parameters
