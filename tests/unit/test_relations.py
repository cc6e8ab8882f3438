"""The attention-relation loss, the learning-rate schedules and their distillation options."""

from __future__ import annotations

import copy

import pytest
import torch

from autoopt.techniques._relations import capture_qkv, relation_heads, relation_kl, relation_loss
from autoopt.techniques._run_state import lr_factor
from autoopt.techniques._training import train_against_teacher
from autoopt.testing import tiny_bert
from autoopt.workloads import Workload


@pytest.fixture(scope="module")
def workload() -> Workload:
    return tiny_bert(layers=3)


def _batch(workload: Workload, n: int = 8) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(x[:n]) for x in workload.train.inputs)


def _relations(student: torch.nn.Module, teacher: torch.nn.Module, batch) -> torch.Tensor:
    with capture_qkv(student) as s:
        student(*batch)
    with capture_qkv(teacher) as t:
        teacher(*batch)
    pairs = [(i, i) for i in range(len(s))]
    return relation_loss(s, t, pairs, batch[1].bool(), relation_heads(teacher))


def test_capture_qkv_catches_every_block_and_leaves_no_hooks(workload: Workload) -> None:
    model = workload.model
    with capture_qkv(model) as qkv:
        model(*_batch(workload))
    assert len(qkv) == 3 and all(q.shape == (8, 16, 32) for q, _, _ in qkv)
    assert not any(m._forward_hooks for m in model.modules())


def test_relation_loss_is_zero_for_identical_models_and_positive_otherwise(
    workload: Workload,
) -> None:
    batch = _batch(workload)
    teacher = workload.model
    same = _relations(copy.deepcopy(teacher), teacher, batch)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    other = copy.deepcopy(teacher)
    with torch.no_grad():
        other.bert.encoder.layer[1].attention.self.key.weight.normal_(0.0, 1.0)
    assert _relations(other, teacher, batch).item() > 1e-2


def test_relation_kl_matches_the_definition_on_a_tiny_case() -> None:
    """MiniLM v2's relation KL written out position by position: per relation head h, query
    position i, softmax over the unpadded j of x_h[i] . x_h[j] / sqrt(d), KL(teacher ||
    student) summed over j, averaged over heads and unpadded i."""
    import math

    torch.manual_seed(0)
    s, t = torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    mask = torch.tensor([[True, True, False]])
    heads, d = 2, 2

    def dist(x: torch.Tensor, h: int, i: int) -> list[float]:
        xh = x[0, :, h * d : (h + 1) * d]
        scores = [float(xh[i] @ xh[j]) / math.sqrt(d) for j in range(2)]  # positions 0, 1
        z = sum(math.exp(v) for v in scores)
        return [math.exp(v) / z for v in scores]

    want = 0.0
    for h in range(heads):
        for i in range(2):
            p, q = dist(t, h, i), dist(s, h, i)
            want += sum(pj * math.log(pj / qj) for pj, qj in zip(p, q, strict=True))
    want /= heads * 2
    assert relation_kl(s, t, mask, heads).item() == pytest.approx(want, rel=1e-5)
    # The loss over blocks is the mean of the query, key and value relations' KLs.
    pair = [(s, s, t)], [(t, t, t)]
    assert relation_loss(*pair, [(0, 0)], mask, heads).item() == pytest.approx(
        2 * want / 3, rel=1e-5
    )


def test_relation_kl_ignores_padded_positions() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    changed_s, changed_t = s.clone(), t.clone()
    changed_s[0, 4:] += 100.0  # what padding holds does not count
    changed_t[0, 4:] -= 100.0
    first = relation_kl(s, t, mask, heads=2)
    assert torch.isfinite(first) and first > 0
    assert relation_kl(changed_s, changed_t, mask, heads=2) == pytest.approx(first.item())


def test_attention_distillation_pulls_relations_towards_the_teacher(workload: Workload) -> None:
    batch = _batch(workload, 16)

    def student() -> torch.nn.Module:
        # A copy of the teacher's layers 0 and 2 whose second block attends elsewhere.
        model = workload.make_student({"keep": [0, 2]})
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(1)
            model.bert.encoder.layer[1].attention.self.key.weight.normal_(0.0, 1.0)
        return model

    def distance(model: torch.nn.Module) -> float:
        with capture_qkv(model) as s, capture_qkv(workload.model) as t:
            model(*batch)
            workload.model(*batch)
        return relation_loss(s, t, [(0, 0), (1, 2)], batch[1].bool(), 4).item()

    with_relations, without = student(), student()
    before = distance(with_relations)
    settings = {"steps": 15, "lr": 3e-3, "batch_size": 16, "temperature": 1.0, "alpha": 1.0}
    train_against_teacher(with_relations, workload, seed=0, attention_weight=1.0, **settings)
    train_against_teacher(without, workload, seed=0, **settings)
    assert distance(with_relations) < 0.5 * before
    assert distance(with_relations) < distance(without)


def test_lr_factor_warms_up_then_decays() -> None:
    assert [lr_factor(s, 10, "constant", 4) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor(0, 10, "cosine") == 1.0
    assert lr_factor(5, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(10, 10, "cosine") == pytest.approx(0.0)
    assert lr_factor(4, 10, "linear", 2) == pytest.approx(0.75)
    assert lr_factor(10, 10, "linear", 2) == pytest.approx(0.0)


def test_kd_refuses_a_warmup_as_long_as_training(workload: Workload) -> None:
    from autoopt.techniques.distillation import KnowledgeDistillation

    technique = KnowledgeDistillation()
    config = technique.Config(layers=2, steps=10, warmup_steps=10)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.workload = workload  # type: ignore[attr-defined]
    assert "warmup_steps (10) must be below steps (10)" in technique.check(config, ctx)  # type: ignore[arg-type]
    ok = technique.Config(layers=2, steps=10, warmup_steps=2, attention_weight=1.0)
    assert technique.check(ok, ctx) is None  # type: ignore[arg-type]
