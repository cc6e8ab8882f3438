"""Layers whose weights are stored as packed codebook indices: Linear, Conv2d, Embedding.

What a layer holds in its state (and so what the size objective measures and what the stage
cache and a pickled bundle store) is the packed ``bits``-bit indices (uint8), the codebooks
(fp16) and the bias: nothing else. No runtime autoopt serves has kernels that compute from a
codebook, so the weight is decoded to float32 once, when the layer is made or unpickled, into
a non-persistent buffer (in memory, never saved): a codebook model runs the float model's
kernels, so it is smaller on disk and no faster. Under ``torch.compile`` the decoded weight is
a buffer like any other (freezing folds and pre-packs it).

``torch.export`` is refused (:meth:`CodebookWeight.weight`): the program would hold the decoded
float32 weights, and a bundle of it would lose the size the codebooks bought; bundles pickle
the module instead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from autoopt.techniques.quantization._kmeans import Codes, decode, pack, unpack

#: What a trial's runner records about a model with codebook layers.
RUNTIME_NOTE = (
    "codebook weights: stored as packed indices + fp16 codebooks, decoded to float32 at load "
    "(no runtime here has codebook kernels): smaller on disk, not faster"
)


class CodebookWeight(nn.Module):
    """The packed codes of one weight tensor, and its float32 decode (in memory only)."""

    runtime_note = RUNTIME_NOTE
    decoded: torch.Tensor

    def __init__(self, codes: Codes, bits: int, shape: torch.Size) -> None:
        super().__init__()
        self.bits = bits
        self.shape = tuple(shape)
        self.group_size = codes.group_size
        self.count = codes.indices.numel()
        self.register_buffer("packed", pack(codes.indices, bits))
        self.register_buffer("codebook", codes.codebook.to(torch.float16))
        self._attach()

    def _attach(self) -> None:
        with torch.no_grad():
            self.register_buffer("decoded", self._decode(), persistent=False)

    def levels(self) -> torch.Tensor:
        """Every weight's index into its group's codebook, unpacked: (rows, columns)."""
        rows = self.codebook.shape[0]
        return unpack(self.packed.cpu(), self.bits, self.count).reshape(rows, -1)

    def _decode(self) -> torch.Tensor:
        codebook = self.codebook.float().cpu()
        weight = decode(codebook, self.levels(), self.group_size).reshape(self.shape)
        return weight.to(self.codebook.device)

    def weight(self) -> torch.Tensor:
        if torch.compiler.is_exporting():
            raise RuntimeError(
                "a codebook layer is not exported: the program would hold its decoded float32 "
                "weights (bundles pickle the module, which holds the codes)"
            )
        return self.decoded

    def __getstate__(self) -> dict[str, Any]:
        # Pickles (the stage cache, bundles, deep copies) hold the codes, never the decode.
        state = self.__dict__.copy()
        state["_buffers"] = {k: v for k, v in self._buffers.items() if k != "decoded"}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._attach()


class CodebookLinear(nn.Module):
    def __init__(self, source: nn.Linear, codes: Codes, bits: int) -> None:
        super().__init__()
        self.in_features, self.out_features = source.in_features, source.out_features
        self.codes = CodebookWeight(codes, bits, source.weight.shape)
        self.bias = None if source.bias is None else nn.Parameter(source.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.codes.weight(), self.bias)


class CodebookConv2d(nn.Module):
    def __init__(self, source: nn.Conv2d, codes: Codes, bits: int) -> None:
        super().__init__()
        if source.padding_mode != "zeros":
            raise ValueError(f"padding_mode {source.padding_mode!r} is not supported")
        self.stride, self.padding = source.stride, source.padding
        self.dilation, self.groups = source.dilation, source.groups
        self.codes = CodebookWeight(codes, bits, source.weight.shape)
        self.bias = None if source.bias is None else nn.Parameter(source.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.codes.weight()
        return F.conv2d(
            x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class CodebookEmbedding(nn.Module):
    def __init__(self, source: nn.Embedding, codes: Codes, bits: int) -> None:
        super().__init__()
        if source.max_norm is not None:
            raise ValueError("an Embedding with max_norm renormalizes its weights in place")
        self.num_embeddings, self.embedding_dim = source.num_embeddings, source.embedding_dim
        self.padding_idx = source.padding_idx
        self.codes = CodebookWeight(codes, bits, source.weight.shape)

    @property
    def weight(self) -> torch.Tensor:
        """The decoded table (BERT's embeddings read ``word_embeddings.weight`` directly)."""
        return self.codes.decoded

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.codes.weight(), self.padding_idx)


CODEBOOK_LAYERS = (CodebookLinear, CodebookConv2d, CodebookEmbedding)
