"""Workload sources (a Hugging Face checkpoint or an ONNX file with a data file) and the
workload contract checked up front: config errors in one line, disjoint seeded (stratified)
splits, one tensor out, the ONNX teacher's baseline and refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import autoopt
from autoopt import hardware
from autoopt.artifacts import OnnxArtifact
from autoopt.config import load_experiment, load_search_space
from autoopt.config._sources import SplitFractions
from autoopt.errors import CandidateRejected, ConfigError
from autoopt.pipeline import build, check_recipe, make_context
from autoopt.recipe import Recipe
from autoopt.resolve import baseline_params, baseline_recipe, make_step
from autoopt.workloads import Workload, load_workload
from autoopt.workloads._data import deal, encode_labels, read_data, read_table
from autoopt.workloads._encode import IGNORE
from tests.tiny_checkpoints import (
    digits_onnx,
    embedder,
    image_classifier,
    text_classifier,
    token_classifier,
)

SPACE = "{parameters: {precision.method: [fp32], backend.method: [onnxruntime]}}"


def _experiment(folder: Path, workload: str) -> Path:
    exp = folder / "exp.yaml"
    exp.write_text(
        f"workload: {workload}\nsearch_space: {SPACE}\nconstraint: {{max_drop: 0.1}}\n"
        "budget: {n_trials: 1}\n"
    )
    return exp


def _one_line(e: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(e.value)
    assert "\n" not in text, text
    return text


# ---- the experiment's schema -------------------------------------------------------------


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return text_classifier(tmp_path_factory.mktemp("text"))


@pytest.mark.parametrize(
    ("workload", "expected"),
    [
        (
            "{huggingface: {model: M, task: text-clf, data: D}}",
            "exp.yaml: workload.huggingface.task: Input should be 'text-classification', "
            "'token-classification', 'feature-extraction' or 'image-classification'; got "
            "'text-clf'",
        ),
        (
            "{huggingface: {model: M, task: text-classification, data: D, columns: {txt: a}}}",
            "exp.yaml: workload.huggingface.columns: unknown field 'txt' (did you mean 'text'?)",
        ),
        (
            "{onnx: {model: M, task: text-classification, data: D, split: {train: 0.8}}}",
            "exp.yaml: workload.onnx.split: train + calibration + evaluation must be at most 1",
        ),
        (
            "{huggingface: {model: M, task: text-classification, data: D, metric: fidelity}}",
            "exp.yaml: workload.huggingface: metric 'fidelity' scores embeddings",
        ),
        (
            "{huggingface: {task: text-classification, data: D}}",
            "exp.yaml: workload.huggingface.model: required field is missing",
        ),
        (
            "{huggingfce: {model: M}}",
            "unknown field 'huggingfce' (did you mean 'huggingface'?); allowed: name, "
            "options, huggingface, onnx",
        ),
        (
            "{huggingface: {model: nowhere, task: text-classification, data: data.csv}}",
            "exp.yaml: workload.huggingface.model: folder not found:",
        ),
        (
            "{onnx: {model: model.onnx, task: feature-extraction, data: {train: a.npz, "
            "calibration: b.npz, evaluation: c.npz}}}",
            "exp.yaml: workload.onnx.data.train: not found:",
        ),
    ],
)
def test_source_config_errors_name_file_field_and_given_value_in_one_line(
    tmp_path: Path, workload: str, expected: str
) -> None:
    (tmp_path / "model.onnx").write_bytes(b"")
    (tmp_path / "data.csv").write_text("text,label\na,0\n")
    with pytest.raises(ConfigError) as e:
        load_experiment(_experiment(tmp_path, workload))
    assert expected in _one_line(e)


def test_source_config_refuses_a_checkpoint_folder_without_config(tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "d.csv").write_text("text,label\na,0\n")
    exp = _experiment(
        tmp_path, "{huggingface: {model: ckpt, task: text-classification, data: d.csv}}"
    )
    with pytest.raises(ConfigError, match="workload.huggingface.model: .* has no config.json"):
        load_experiment(exp)


def test_source_paths_are_relative_to_the_experiment_and_travel_as_name_and_options(
    tmp_path: Path, text_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "exps"
    folder.mkdir()
    shutil.copytree(text_model / "model", folder / "ckpt")
    shutil.copy(text_model / "data.csv", folder / "d.csv")
    exp_path = _experiment(
        folder, "{huggingface: {model: ckpt, task: text-classification, data: d.csv}}"
    )
    monkeypatch.chdir(tmp_path)  # not the experiment's folder
    exp = autoopt.validate(exp_path, load=False)
    assert exp.workload.name == "huggingface"
    assert exp.workload.options == {
        "model": str(folder / "ckpt"),
        "task": "text-classification",
        "data": str(folder / "d.csv"),
    }
    # The dumped experiment (a snapshot, a study attribute) loads again as it was.
    again = type(exp).model_validate(exp.model_dump(mode="json"))
    assert again.workload == exp.workload


# ---- splits ------------------------------------------------------------------------------


def test_deal_gives_disjoint_seeded_splits_in_the_fractions() -> None:
    fractions = SplitFractions(train=0.5, calibration=0.2, evaluation=0.3, seed=4)
    parts = deal(1000, fractions, None, "here")
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 500, "calibration": 200, "evaluation": 300}
    every = np.concatenate(list(parts.values()))
    assert len(set(every.tolist())) == 1000  # disjoint, and nothing lost
    again = deal(1000, fractions, None, "here")
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = deal(1000, fractions.model_copy(update={"seed": 5}), None, "here")
    assert not np.array_equal(parts["evaluation"], other["evaluation"])


def test_deal_stratifies_by_class() -> None:
    labels = np.array([0] * 900 + [1] * 100)
    parts = deal(1000, SplitFractions(), labels, "here")
    for name, share in (("train", 0.6), ("calibration", 0.1), ("evaluation", 0.3)):
        counts = np.bincount(labels[parts[name]], minlength=2)
        assert counts.tolist() == [round(900 * share), round(100 * share)], name


def test_deal_refuses_an_empty_split() -> None:
    with pytest.raises(
        ConfigError, match=r"^d.csv: workload.onnx.split.calibration: 0.1 of 3 samples leaves"
    ):
        deal(3, SplitFractions(), None, "d.csv: workload.onnx")


def test_read_data_takes_a_folder_of_the_three_splits(tmp_path: Path) -> None:
    for name in ("train", "calibration"):
        (tmp_path / f"{name}.csv").write_text("text,label\na,0\n")
    with pytest.raises(ConfigError, match=r"has train.csv, calibration.csv but no evaluation"):
        read_data(str(tmp_path), "workload.onnx.data")
    (tmp_path / "evaluation.jsonl").write_text('{"text": "b", "label": 1}\n')
    tables = read_data(str(tmp_path), "workload.onnx.data")
    assert set(tables) == {"train", "calibration", "evaluation"}
    assert tables["evaluation"].columns == {"text": ["b"], "label": [1]}


def test_read_table_names_the_file_the_field_and_the_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("sentence,label\na,0\n")
    table = read_table(path, "workload.huggingface.data")
    with pytest.raises(ConfigError) as e:
        table.column("text", "workload.huggingface.columns.text")
    assert _one_line(e) == (
        f"{path}: workload.huggingface.columns.text: no column 'text'; it has sentence, label"
    )
    with pytest.raises(ConfigError, match=r"cannot read '.txt' files; allowed: .csv, .jsonl"):
        read_table(tmp_path / "d.txt", "workload.onnx.data")


def test_parquet_is_read_where_pyarrow_is_installed_and_refused_with_the_fix_elsewhere(
    tmp_path: Path,
) -> None:
    import pandas as pd

    path = tmp_path / "d.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(ConfigError, match="reading parquet needs pyarrow"):
            read_table(path, "workload.onnx.data")
        return
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_parquet(path)
    assert read_table(path, "workload.onnx.data").columns["label"] == [0, 1]


def test_labels_by_name_map_to_the_models_classes_and_refuse_the_rest() -> None:
    def hint() -> str:
        return "give labels"

    ids = encode_labels(["pos", "neg", 1], ("neg", "pos"), 2, "d.csv", hint)
    assert ids.tolist() == [1, 0, 1]
    with pytest.raises(ConfigError, match=r"row 1: 'meh' is not one of the model's classes neg"):
        encode_labels(["pos", "meh"], ("neg", "pos"), 2, "d.csv", hint)
    with pytest.raises(ConfigError, match=r"label 3 is outside the model's 2 classes \(0..1\)"):
        encode_labels([0, 3], None, 2, "d.csv", hint)
    with pytest.raises(ConfigError, match=r"labels are class names .* give labels"):
        encode_labels(["pos"], None, 2, "d.csv", hint)


# ---- the contract, checked by validate --------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "returns_tuple",
            "workload 'broken': model: returns a tuple of 2, not one tensor; wrap it so that "
            "forward returns the tensor to score (e.g. `[0]`)",
        ),
        (
            "returns_model_output",
            "workload 'broken': model: returns a SequenceClassifierOutput (fields logits), not "
            "one tensor; wrap it so that forward returns the tensor to score (e.g. `.logits`), "
            "or load a Hugging Face checkpoint with workload: {huggingface: {...}}",
        ),
        (
            "overlapping_splits",
            "workload 'broken': evaluation: shares 15 of its 15 samples with train (identical "
            "inputs); train, calibration and evaluation must be disjoint",
        ),
        (
            "torch_splits",
            "workload 'broken': train.inputs[0]: is a torch.Tensor, not a numpy array (call "
            ".numpy() on it)",
        ),
        (
            "inputs_do_not_run",
            "workload 'broken': model: does not run on the evaluation split's first samples "
            "(2x5 float32): RuntimeError: mat1 and mat2 shapes cannot be multiplied",
        ),
    ],
)
def test_validate_catches_each_contract_breach_in_one_line(
    tmp_path: Path, entry: str, expected: str
) -> None:
    exp = _experiment(tmp_path, f"tests.plugins.broken_workloads:{entry}")
    assert autoopt.validate(exp, load=False).workload.name.endswith(entry)  # files only
    with pytest.raises(ConfigError) as e:
        autoopt.validate(exp)
    assert _one_line(e).startswith(f"{exp}: ")
    assert expected in str(e.value)


def test_validate_loads_and_accepts_a_workload_that_keeps_the_contract(tmp_path: Path) -> None:
    exp = _experiment(tmp_path, "tests.plugins.broken_workloads:healthy")
    assert autoopt.validate(exp).workload.name.endswith("healthy")


# ---- Hugging Face checkpoints ------------------------------------------------------------


def _hf(folder: Path, task: str, data: str, **options: object) -> Workload:
    return load_workload(
        "huggingface", {"model": str(folder / "model"), "task": task, "data": data, **options}
    )


def test_huggingface_text_classifier_is_one_tensor_on_disjoint_stratified_splits(
    text_model: Path,
) -> None:
    w = _hf(text_model, "text-classification", str(text_model / "data.csv"))
    assert w.name == "model" and w.teacher_kind == "torch"
    assert w.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert (len(w.train), len(w.calibration), len(w.evaluation)) == (144, 24, 72)
    shares = [np.mean(s.targets) for s in (w.train, w.calibration, w.evaluation)]
    assert max(shares) - min(shares) < 0.05  # stratified: each split keeps the class share
    with torch.inference_mode():
        out = w.model(*(torch.from_numpy(x) for x in w.evaluation.take(4).inputs))
    assert isinstance(out, torch.Tensor) and out.shape == (4, 2)
    from autoopt.measure import teacher_outputs

    scores = w.metric(teacher_outputs(w), w.evaluation, teacher_outputs(w))
    assert scores["accuracy"] > 0.7  # trained briefly on the same rule
    assert set(scores) == {"accuracy", "macro_f1", "teacher_agreement"}
    # Every split is padded to the longest sample of the data, not to max_length (128).
    longest = max(int(s.inputs[1].sum(1).max()) for s in (w.train, w.calibration, w.evaluation))
    assert w.evaluation.inputs[0].shape[1] == longest < 128 and w.trim_batch is not None


def test_huggingface_version_covers_the_config_and_the_data(
    text_model: Path, tmp_path: Path
) -> None:
    base = _hf(text_model, "text-classification", str(text_model / "data.csv")).version
    copy = tmp_path / "copy"
    shutil.copytree(text_model, copy)
    assert _hf(copy, "text-classification", str(copy / "data.csv")).version == base
    edited = tmp_path / "edited"  # another folder: a workload loads once per options
    shutil.copytree(text_model, edited)
    config = json.loads((edited / "model" / "config.json").read_text())
    config["classifier_dropout"] = 0.3  # the same weights, another model
    (edited / "model" / "config.json").write_text(json.dumps(config))
    assert _hf(edited, "text-classification", str(edited / "data.csv")).version != base
    fewer = _hf(text_model, "text-classification", str(text_model / "data.csv"), max_samples=200)
    assert fewer.version != base and len(fewer.evaluation) == 60


def test_huggingface_distilbert_gets_layout_students_and_role_exclusions(tmp_path: Path) -> None:
    """A DistilBERT checkpoint (154 lines of glue before): its tokenizer gives no
    token_type_ids, and the layout found from its config builds a layer-dropped student and
    resolves the ffn_out role, with no workload hooks."""
    from autoopt.cache import StageCache
    from autoopt.layouts import expand_roles, find_layout

    folder = text_classifier(tmp_path, steps=20, rows=120, family="distilbert")
    w = _hf(folder, "text-classification", str(folder / "data.csv"))
    assert w.input_names == ("input_ids", "attention_mask")
    assert w.make_student is None and find_layout(w.model) is not None
    assert expand_roles(["ffn_out"], w.model) == ["model.distilbert.transformer.layer.*.ffn.lin2"]
    recipe = _recipe(
        "torch_eager",
        distillation=("distillation.kd", {"layers": 1, "steps": 2, "batch_size": 8}),
        quantization=("quantization.dynamic_int8", {"exclude": ["ffn_out"]}),
    )
    check_recipe(recipe, make_context(recipe, w, hardware.current()))
    built = build(recipe, w, StageCache(tmp_path / "cache"), hardware.current(), tmp_path)
    stages = [e.stage for e in built.events]
    assert stages == ["distillation.kd", "quantization.dynamic_int8"], stages
    from autoopt.artifacts import load_artifact

    student = load_artifact(built.path, built.kind).model  # type: ignore[attr-defined]
    assert len(student.model.distilbert.transformer.layer) == 1
    kept = student.model.distilbert.transformer.layer[0].ffn.lin2
    assert type(kept) is torch.nn.Linear  # excluded by role: still float


def test_huggingface_refuses_a_checkpoint_without_the_tasks_head(tmp_path: Path) -> None:
    folder = embedder(tmp_path)
    (folder / "labels.csv").write_text("text,label\n" + "".join(f"w{i},0\n" for i in range(20)))
    with pytest.raises(ConfigError) as e:
        _hf(folder, "text-classification", str(folder / "labels.csv"))
    assert "workload.huggingface.task: the checkpoint has no weights for classifier" in _one_line(
        e
    )


def test_huggingface_feature_extraction_gives_unit_embeddings_scored_by_fidelity(
    tmp_path: Path,
) -> None:
    folder = embedder(tmp_path)
    w = _hf(folder, "feature-extraction", str(folder / "data.csv"))
    assert w.output_kind == "embedding" and w.metric_name == "fidelity"
    assert w.evaluation.targets is None
    with torch.inference_mode():
        out = w.model(*(torch.from_numpy(x) for x in w.evaluation.take(3).inputs))
    assert out.shape == (3, 32)
    assert np.allclose(np.linalg.norm(out.numpy(), axis=1), 1.0, atol=1e-5)


def test_huggingface_token_classification_scores_each_words_first_piece(tmp_path: Path) -> None:
    folder = token_classifier(tmp_path)
    w = _hf(folder, "token-classification", str(folder / "data.jsonl"), metric="macro_f1")
    ids, targets = w.evaluation.inputs[0], w.evaluation.targets
    assert targets is not None and targets.shape == ids.shape
    assert (targets[:, 0] == IGNORE).all()  # [CLS]
    assert (targets[ids == 0] == IGNORE).all()  # padding
    scored = (targets != IGNORE).sum(1)
    # One scored piece per word: iota and omicron are 2 and 3 pieces, scored once.
    tokenizer = w.extras["preprocessor"]
    pieces = [tokenizer.convert_ids_to_tokens(row[row != 0].tolist())[1:-1] for row in ids]
    words = np.array([sum(not p.startswith("##") for p in row) for row in pieces])
    assert any(len(row) > n for row, n in zip(pieces, words, strict=True))
    assert (scored == words).all()
    with torch.inference_mode():
        out = w.model(*(torch.from_numpy(x) for x in w.evaluation.take(2).inputs))
    assert out.shape == (2, ids.shape[1], 2)
    assert set(
        w.metric(np.zeros((*targets.shape, 2)), w.evaluation, np.zeros((*targets.shape, 2)))
    ) == {
        "macro_f1",
        "top1_accuracy",
        "teacher_agreement",
    }


def test_huggingface_image_classifier_reads_a_folder_of_classes(tmp_path: Path) -> None:
    folder = image_classifier(tmp_path)
    w = _hf(folder, "image-classification", str(folder / "images"))
    assert w.input_names == ("pixel_values",)
    assert w.evaluation.inputs[0].shape[1:] == (3, 16, 16)
    assert sorted(np.bincount(w.evaluation.targets).tolist()) == [4, 4]  # 12 each, 30%


# ---- ONNX files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_digits(workload: Workload, tmp_path_factory: pytest.TempPathFactory) -> Workload:
    folder = digits_onnx(tmp_path_factory.mktemp("onnx_digits"), workload)
    return load_workload(
        "onnx",
        {
            "model": str(folder / "model.onnx"),
            "data": str(folder / "data.npz"),
            "task": "image-classification",
            "name": "digits_onnx",
        },
    )


def test_onnx_workload_serves_the_graph_as_teacher_with_an_onnx_runtime_baseline(
    onnx_digits: Workload, workload: Workload
) -> None:
    w = onnx_digits
    assert isinstance(w.model, OnnxArtifact) and w.teacher_kind == "onnx"
    assert w.input_names == ("image",) and w.output_names == ("logits",)
    assert baseline_recipe("onnx").describe() == "fp32 @ onnxruntime"
    space = load_search_space(Path(__file__).parents[2] / "search_spaces" / "digits_onnx.yaml")
    assert baseline_params(space, "onnx") == {
        "backend.method": "onnxruntime",
        "quantization.method": "none",
        "precision.method": "fp32",
    }
    from autoopt.measure import teacher_outputs
    from autoopt.workloads import predict_torch

    # The graph's outputs are the PyTorch teacher's it was exported from.
    expected = predict_torch(workload.model, w.evaluation)
    assert np.allclose(teacher_outputs(w), expected, atol=1e-4)


def _recipe(backend: str = "onnxruntime", **steps: tuple[str, dict]) -> Recipe:
    made = {family: make_step(key, config) for family, (key, config) in steps.items()}
    return Recipe(
        precision=made.pop("precision", make_step("precision.fp32")),
        backend=make_step(f"backend.{backend}"),
        **made,
    )


@pytest.mark.parametrize(
    ("recipe", "reason"),
    [
        (
            _recipe(distillation=("distillation.kd", {})),
            "distillation.kd: works on PyTorch models only, and the workload's teacher is an "
            "ONNX graph (model.onnx)",
        ),
        (
            _recipe(pruning=("pruning.structured", {"amount": 0.3})),
            "pruning.structured: works on PyTorch models only",
        ),
        (
            _recipe("torch_eager"),
            "backend.torch_eager: serves PyTorch modules, and the workload's teacher is an ONNX "
            "graph (model.onnx); use a backend that serves ONNX graphs",
        ),
        (_recipe("torch_compile"), "backend.torch_compile: serves PyTorch modules"),
        (
            _recipe(quantization=("quantization.dynamic_int8", {"exclude_most_sensitive": 2})),
            "quantization.dynamic_int8: this configuration needs the PyTorch model, and the "
            "workload's teacher is an ONNX graph",
        ),
    ],
)
def test_onnx_teacher_refuses_what_needs_pytorch_with_the_reason(
    onnx_digits: Workload, recipe: Recipe, reason: str
) -> None:
    ctx = make_context(recipe, onnx_digits, hardware.current())
    with pytest.raises(CandidateRejected) as e:
        check_recipe(recipe, ctx)
    assert reason in str(e.value)


def test_onnx_teacher_builds_static_int8_from_the_graph_itself(
    onnx_digits: Workload, tmp_path: Path
) -> None:
    from autoopt.cache import StageCache
    from autoopt.techniques.quantization._graph import count_integer_ops

    recipe = _recipe(quantization=("quantization.static_int8", {"exclude": ["fc2"]}))
    check_recipe(recipe, make_context(recipe, onnx_digits, hardware.current()))
    built = build(
        recipe, onnx_digits, StageCache(tmp_path / "cache"), hardware.current(), tmp_path
    )
    assert built.kind == "onnx"
    assert [e.stage for e in built.events] == ["quantization.static_int8"]  # no export stage
    assert count_integer_ops(built.path / "model.onnx") > 0


def test_onnx_graph_with_several_outputs_is_cut_to_the_named_one(tmp_path: Path) -> None:
    class TwoOutputs(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x.sum(-1, keepdim=True) * torch.ones(1, 3), x * 2

    path = tmp_path / "two.onnx"
    torch.onnx.export(
        TwoOutputs(),
        (torch.zeros(2, 4),),
        str(path),
        input_names=["x"],
        output_names=["scores", "doubled"],
        dynamic_axes={"x": {0: "b"}, "scores": {0: "b"}, "doubled": {0: "b"}},
        dynamo=False,
    )
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((30, 4)).astype(np.float32))
    options = {"model": str(path), "data": str(tmp_path / "d.npz"), "task": "feature-extraction"}
    with pytest.raises(ConfigError) as e:
        load_workload("onnx", options)
    assert _one_line(e).endswith(
        "workload.onnx.output: the graph has 2 outputs (scores, doubled), and autoopt scores "
        "one; name it in output"
    )
    w = load_workload("onnx", {**options, "output": "doubled"})
    assert w.output_names == ("doubled",) and w.model.path != path  # type: ignore[union-attr]
    assert w.metric_name == "fidelity"


def test_onnx_text_data_needs_a_tokenizer_and_follows_the_graphs_inputs(
    text_model: Path, tmp_path: Path
) -> None:
    hf = _hf(text_model, "text-classification", str(text_model / "data.csv"))
    from autoopt.artifacts import TorchArtifact
    from autoopt.onnx_export import export_onnx

    graph = export_onnx(TorchArtifact(hf.model), hf, tmp_path / "text.onnx")
    options = {
        "model": str(graph.path),
        "data": str(text_model / "data.csv"),
        "task": "text-classification",
        "labels": ["neg", "pos"],
    }
    with pytest.raises(ConfigError, match=r"workload.onnx.tokenizer: data.csv is not .npz arrays"):
        load_workload("onnx", options)
    w = load_workload("onnx", {**options, "tokenizer": str(text_model / "model")})
    assert w.input_names == hf.input_names and w.teacher_kind == "onnx"
    assert all(
        np.array_equal(a, b)
        for a, b in zip(w.evaluation.inputs, hf.evaluation.inputs, strict=True)
    )


def test_selftest_paths_of_an_onnx_teacher_start_with_its_baseline() -> None:
    from autoopt.selftest import enumerate_paths

    space = load_search_space(Path(__file__).parents[2] / "search_spaces" / "digits_onnx.yaml")
    assert enumerate_paths(space, "onnx")[0] == baseline_recipe("onnx")
