"""Codebook (k-means) weight quantization: at most 2**bits values per codebook, stored as packed
indices + codebooks, and the size the trial records is what is stored."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from autoopt import plugins
from autoopt.artifacts import TorchArtifact, artifact_size_bytes
from autoopt.errors import CandidateError
from autoopt.plugins import MethodConfig
from autoopt.techniques.quantization import CodebookConfig
from autoopt.techniques.quantization._codebook import codebook_model
from autoopt.techniques.quantization._codebook_layers import (
    RUNTIME_NOTE,
    CodebookConv2d,
    CodebookEmbedding,
    CodebookLinear,
    CodebookWeight,
)
from autoopt.techniques.quantization._kmeans import decode, kmeans, pack, unpack
from autoopt.testing import TechniqueTestSuite, make_context
from autoopt.workloads import Workload

TINY_BERT = "autoopt.testing:tiny_bert"


class TestCodebook4Bits(TechniqueTestSuite):
    key = "quantization.codebook"
    config = {"bits": 4}
    tolerance = 0.02


class TestCodebook3BitsPerGroupCompiled(TechniqueTestSuite):
    key = "quantization.codebook"
    config = {"bits": 3, "group_size": 64, "eight_bit": ["fc2"]}
    backend = "backend.torch_compile"
    backend_config = {"freezing": True}
    tolerance = 0.03


class TestCodebookEmbedding(TechniqueTestSuite):
    key = "quantization.codebook"
    config = {"bits": 4, "group_size": 32}
    workload_name = TINY_BERT
    tolerance = 0.02


@pytest.mark.parametrize("bits", range(1, 9))
def test_pack_unpack_round_trips_at_every_width(bits: int) -> None:
    generator = torch.Generator().manual_seed(bits)
    indices = torch.randint(0, 2**bits, (37, 11), generator=generator)
    packed = pack(indices, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(indices.numel() * bits / 8)
    assert torch.equal(unpack(packed, bits, indices.numel()).reshape(37, 11), indices)


@pytest.mark.parametrize(("bits", "group_size"), [(2, None), (3, None), (4, 16), (3, 48)])
def test_kmeans_gives_each_cell_at_most_2_to_the_bits_values(
    bits: int, group_size: int | None
) -> None:
    weight = torch.randn(12, 100, generator=torch.Generator().manual_seed(0))
    codes = kmeans(weight, bits, group_size, iterations=30)
    decoded = decode(codes.codebook, codes.indices, codes.group_size)
    assert decoded.shape == weight.shape
    size = codes.group_size
    for row in range(12):
        for start in range(0, 100, size):
            assert len(torch.unique(decoded[row, start : start + size])) <= 2**bits
    # Lloyd's centroids beat the uniform grid the same number of levels spans.
    lo, hi = weight.amin(1, keepdim=True), weight.amax(1, keepdim=True)
    step = (hi - lo) / (2**bits - 1)
    uniform = lo + ((weight - lo) / step).round() * step
    assert (decoded - weight).pow(2).mean() < (uniform - weight).pow(2).mean()


def test_kmeans_is_deterministic_and_exact_where_a_cell_has_few_values() -> None:
    weight = torch.tensor([[0.5, -1.0, 0.5, 2.0, -1.0, 2.0, 0.5, 7.0]])
    codes = kmeans(weight, 2, None, iterations=10)
    assert torch.equal(decode(codes.codebook, codes.indices, codes.group_size), weight)
    again = kmeans(weight, 2, None, iterations=10)
    assert torch.equal(codes.codebook, again.codebook) and torch.equal(
        codes.indices, again.indices
    )


def _codebook_layers(model: nn.Module) -> dict[str, nn.Module]:
    kinds = (CodebookLinear, CodebookConv2d, CodebookEmbedding)
    return {n: m for n, m in model.named_modules() if isinstance(m, kinds)}


@pytest.mark.parametrize(("bits", "group_size"), [(4, None), (3, None), (3, 64)])
def test_codebook_layers_hold_at_most_2_to_the_bits_values_per_codebook(
    workload: Workload, bits: int, group_size: int | None
) -> None:
    config = CodebookConfig(bits=bits, group_size=group_size, eight_bit=["fc2"])
    model = codebook_model(workload.model, config, "codebook")
    layers = _codebook_layers(model)
    assert set(layers) == {"conv1", "conv2", "fc1", "fc2"}
    for name, layer in layers.items():
        weight = layer.codes.decoded.reshape(layer.codes.shape[0], -1)
        levels = 2 ** (8 if name == "fc2" else bits)
        size = weight.shape[1] if group_size is None else group_size
        for start in range(0, weight.shape[1], size):
            for row in weight[:, start : start + size]:
                assert len(torch.unique(row)) <= levels
        # Only the codes are state: no float weight, and the packed indices are bits wide.
        state = layer.state_dict()
        assert "codes.decoded" not in state and "weight" not in state
        n = layer.codes.decoded.numel()
        if name == "conv1":  # 9 weights per output channel: 4 bits, not more, cover them
            assert layer.codes.bits == min(levels.bit_length() - 1, 4)
        # Exactly ``bits`` per weight: no padding where a row is not a multiple of the group.
        assert state["codes.packed"].numel() == math.ceil(n * layer.codes.bits / 8)
    # The teacher is untouched and its outputs are closely reproduced.
    x = torch.from_numpy(workload.evaluation.inputs[0][:64])
    with torch.no_grad():
        want, got = workload.model(x), model(x)
    assert (want.argmax(-1) == got.argmax(-1)).float().mean() >= 0.95


def test_stored_size_is_the_codes_size_after_use_and_pickling(
    workload: Workload, tmp_path: Path
) -> None:
    teacher_bytes = artifact_size_bytes(TorchArtifact(workload.model), tmp_path)
    model = codebook_model(workload.model, CodebookConfig(bits=3), "codebook")
    before = artifact_size_bytes(TorchArtifact(model), tmp_path)
    with torch.no_grad():
        model(torch.from_numpy(workload.evaluation.inputs[0][:8]))
    TorchArtifact(model).save(tmp_path)  # what the stage cache stores
    loaded = TorchArtifact.load(tmp_path).model
    assert artifact_size_bytes(TorchArtifact(loaded), tmp_path) == before
    # The cached file is the same codes plus the module's structure, never the decode.
    assert (tmp_path / "model.pt").stat().st_size < before + 8_000
    params = sum(p.numel() for p in workload.model.parameters())
    weights = sum(m.codes.decoded.numel() for m in _codebook_layers(model).values())
    codes = sum(
        b.nbytes for n, b in model.state_dict().items() if n.endswith(("packed", "codebook"))
    )
    floats = (params - weights) * 4  # biases
    assert before < (codes + floats) * 1.25 + 4_000
    assert before < teacher_bytes / 5
    x = torch.from_numpy(workload.evaluation.inputs[0][:8])
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_codebook_runner_says_it_buys_size_not_speed(workload: Workload) -> None:
    model = codebook_model(workload.model, CodebookConfig(bits=4), "codebook")
    runner = plugins.get_backend("backend.torch_eager")().compile(
        TorchArtifact(model), MethodConfig(), 1
    )
    assert runner.describe()["notes"] == [RUNTIME_NOTE]
    plain = plugins.get_backend("backend.torch_eager")().compile(
        TorchArtifact(workload.model), MethodConfig(), 1
    )
    assert "notes" not in plain.describe()


def test_codebook_module_is_not_exported_as_a_float_program(workload: Workload) -> None:
    model = codebook_model(workload.model, CodebookConfig(bits=4), "codebook")
    x = torch.from_numpy(workload.evaluation.inputs[0][:2])
    with pytest.raises(Exception, match="codebook layer is not exported"):
        torch.export.export(model, (x,))


def test_decoded_weights_follow_the_module_and_never_pickle() -> None:
    source = nn.Linear(40, 6)
    layer = codebook_model(nn.Sequential(source), CodebookConfig(bits=2), "codebook")[0]
    assert isinstance(layer.codes, CodebookWeight)
    blob = pickle.dumps(layer)
    assert len(blob) < 2_000  # 240 weights: 60 bytes of codes, codebooks, bias, structure
    again = pickle.loads(blob)
    assert torch.equal(again.codes.decoded, layer.codes.decoded)


@pytest.mark.parametrize(
    ("backend", "precision", "config", "expected"),
    [
        ("backend.torch_eager", "precision.fp32", {}, None),
        ("backend.torch_compile", "precision.fp32", {}, None),
        ("backend.onnxruntime", "precision.fp32", {}, "use backend torch_eager or"),
        ("backend.openvino", "precision.fp32", {}, "quantization.nncf_weights"),
        ("backend.torch_eager", "precision.bf16", {}, "use precision fp32"),
    ],
)
def test_codebook_check(
    workload: Workload,
    tmp_path: Path,
    backend: str,
    precision: str,
    config: dict[str, Any],
    expected: str | None,
) -> None:
    ctx = make_context(
        workload, tmp_path, "quantization.codebook", config, backend=backend, precision=precision
    )
    reason = plugins.get_technique("quantization.codebook")().check(CodebookConfig(), ctx)
    assert reason is None if expected is None else expected in (reason or "")


def test_codebook_names_that_match_nothing_fail(workload: Workload) -> None:
    with pytest.raises(CandidateError, match="no layer named 'fc9'"):
        codebook_model(workload.model, CodebookConfig(eight_bit=["fc9"]), "codebook")
    with pytest.raises(CandidateError, match="no linear layer left"):
        codebook_model(
            workload.model, CodebookConfig(layers=["linear"], exclude=["fc1", "fc2"]), "codebook"
        )


def test_per_group_cells_cover_rows_that_are_not_a_multiple_of_the_group() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(50, 3))
    out = codebook_model(model, CodebookConfig(bits=2, group_size=16), "codebook")
    weight = out[0].codes.decoded
    assert weight.shape == (3, 50)
    for start in (0, 16, 32, 48):  # the last group holds 2 real weights
        for row in weight[:, start : start + 16]:
            assert len(torch.unique(row)) <= 4
    x = torch.randn(5, 50)
    with torch.no_grad():
        assert np.allclose(out(x).numpy(), nn.functional.linear(x, weight, model[0].bias).numpy())
