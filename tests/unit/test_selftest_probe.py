"""The probe: the model's repeated block, fed what it really receives, as a workload."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from autoopt.selftest import build_probe, find_block
from autoopt.selftest._block import catch_block_io
from autoopt.workloads import Workload, load_workload, predict_torch
from tests.unit.selftest_models import Block, Parallel, Stack, stack_workload


@pytest.fixture(scope="module")
def minilm() -> Workload:
    # The same options as test_minilm_workload: one load per process serves both.
    return load_workload("minilm", {"eval_size": 500, "train_size": 200, "calibration_size": 32})


def test_find_block_takes_the_outer_repeated_block_not_containers() -> None:
    found = find_block(Stack())
    assert found is not None
    path, block = found
    # Inner repeats as often as Block but is smaller; Dropout repeats more but computes
    # nothing; Sequential and ModuleList are containers.
    assert path == "layers.0" and isinstance(block, Block)


def test_find_block_picks_bertlayer_in_minilm(minilm: Workload) -> None:
    found = find_block(minilm.model)
    assert found is not None
    assert found[0] == "bert.encoder.layer.0" and type(found[1]).__name__ == "BertLayer"


def test_find_block_finds_none_in_the_digits_cnn(workload: Workload) -> None:
    assert find_block(workload.model) is None


def test_build_probe_minilm_catches_two_bertlayers_inputs_at_each_batch_size(
    minilm: Workload,
) -> None:
    probe = build_probe(minilm, [1, 4])
    assert probe.block == "bert.encoder.layer.0" and probe.label == "BertLayer x2"
    assert probe.workload.input_names == ("hidden_states", "attention_mask")
    assert [(g.batch_size, g.stop - g.start) for g in probe.groups] == [(1, 8), (4, 8)]
    hidden, mask = probe.workload.evaluation.inputs
    assert hidden.shape == (16, 128, 384) and mask.shape == (16, 1, 128, 128)
    assert probe.shapes(1) == "1x128x384 + 1x1x128x128"
    assert probe.workload.output_kind == "embedding"
    assert len(probe.workload.calibration) >= 8


def test_probe_outputs_equal_the_blocks_outputs_inside_the_full_model(minilm: Workload) -> None:
    probe = build_probe(minilm, [1, 4])
    np.testing.assert_allclose(probe.reference, probe.inside, rtol=0, atol=1e-4)
    # Independently: the blocks caught on other sentences, and the probe fed what they got.
    layers = minilm.model.bert.encoder.layer
    rows = tuple(x[:3] for x in minilm.evaluation.inputs)
    args, _, inside = catch_block_io(minilm.model, layers[0], rows, last=layers[1])
    with torch.no_grad():
        out = probe.workload.model(args[0], args[1])
    torch.testing.assert_close(out, inside, rtol=0, atol=1e-4)


def test_build_probe_is_the_whole_model_when_no_block_repeats(workload: Workload) -> None:
    probe = build_probe(workload, [1, 64])
    assert probe.block == "" and probe.block_class == "DigitsCNN"
    assert probe.label == "DigitsCNN (whole model)"
    assert probe.workload.input_names == workload.input_names
    teacher = predict_torch(workload.model, probe.workload.evaluation)
    np.testing.assert_allclose(probe.reference, teacher, rtol=0, atol=1e-5)


def test_build_probe_fixes_unbatched_arguments_and_flags() -> None:
    work = stack_workload()
    probe = build_probe(work, [1, 8])
    module = probe.workload.model
    assert probe.block == "layers.0" and probe.workload.input_names == ("x",)
    assert probe.label == "Block x2"
    # ``scale`` has no batch axis: a buffer, so that a precision cast reaches it.
    assert [name for name, _ in module.named_buffers()] and module.call_kwargs == {"double": True}
    np.testing.assert_allclose(probe.reference, probe.inside, rtol=0, atol=1e-6)
    assert module.to(torch.bfloat16)(torch.ones(2, 4, dtype=torch.bfloat16)).dtype == (
        torch.bfloat16
    )


def test_probe_module_pickles_and_exports_with_a_dynamic_batch() -> None:
    probe = build_probe(stack_workload(), [1, 8])
    module = probe.workload.model
    buffer = io.BytesIO()
    torch.save(module, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    x = torch.from_numpy(probe.workload.evaluation.inputs[0][:5])
    torch.testing.assert_close(loaded(x), module(x))
    # PT2E matches per-input dynamic shapes to forward's named parameters.
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(module, (x,), dynamic_shapes=({0: batch},))
    assert list(program.graph_signature.user_inputs) == ["x"]
    torch.testing.assert_close(program.module()(x[:3]), module(x[:3]))


def test_build_probe_falls_back_to_one_block_when_blocks_do_not_feed_each_other() -> None:
    probe = build_probe(stack_workload(Parallel()), [1, 8])
    assert probe.label == "Block" and probe.blocks == 1
    np.testing.assert_allclose(probe.reference, probe.inside, rtol=0, atol=1e-6)
