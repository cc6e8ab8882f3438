"""A model's repeated block, the arguments it really receives, and the block as a module of
its tensor inputs alone."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from autoopt.errors import WorkloadError
from autoopt.layouts import is_linear

#: Containers group modules of any kind; a repeated Sequential is not a repeated block.
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def find_block(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(path, module)`` of the first instance of the most repeated module class that has
    Linear or Conv layers inside (at least two instances; ties go to the class with the most
    parameters, the outer one), or None when no such class repeats."""
    instances: dict[type, list[tuple[str, nn.Module]]] = {}
    for name, module in model.named_modules():
        if not name or isinstance(module, _CONTAINERS) or not _has_compute(module):
            continue
        instances.setdefault(type(module), []).append((name, module))
    repeated = [found for found in instances.values() if len(found) >= 2]
    if not repeated:
        return None
    best = max(repeated, key=lambda found: (len(found), _param_count(found[0][1])))
    return best[0]


def block_run(model: nn.Module, path: str, length: int) -> list[nn.Module]:
    """Up to ``length`` consecutive instances of the block at ``path`` in the container that
    holds it (a transformer's layer list), starting with it; just it if no container holds it
    or the next sibling is of another kind."""
    block = model.get_submodule(path)
    parent_path = path.rpartition(".")[0]
    parent = model.get_submodule(parent_path) if parent_path else model
    if not isinstance(parent, nn.ModuleList | nn.Sequential):
        return [block]
    siblings = list(parent.children())
    start = next(i for i, child in enumerate(siblings) if child is block)
    run = [block]
    for child in siblings[start + 1 :]:
        if len(run) == length or type(child) is not type(block):
            break
        run.append(child)
    return run


class BlockChain(nn.Module):
    """Consecutive blocks, each fed the previous one's first output in place of its first
    argument and the same other arguments, as a layer stack feeds its layers.

    Two blocks have what one lacks: the seam, where one block's last op feeds the next one's
    first (a LayerNorm into int8 quantization, fused across it by Inductor).
    """

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = None
        for block in self.blocks:
            out = first_tensor(block(*args, **kwargs))
            if args:
                args = (out, *args[1:])
            else:  # called by keyword only: the first keyword carries the state
                first = next(iter(kwargs))
                kwargs = {**kwargs, first: out}
        assert out is not None  # noqa: S101 - a chain has at least one block
        return out


def _has_compute(module: nn.Module) -> bool:
    return any(
        isinstance(m, nn.modules.conv._ConvNd) or is_linear(m)  # GPT-2's Conv1D counts
        for m in module.modules()
        if m is not module
    )


def _param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def first_tensor(output: Any) -> torch.Tensor:
    """A module's first output: the tensor itself, or the first of a tuple, list, dict or
    ``ModelOutput``."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "to_tuple"):
        output = output.to_tuple()
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, list | tuple) and output:
        return first_tensor(output[0])
    raise WorkloadError(f"the probe's block returned {type(output).__name__}, not a tensor")


class _Caught(Exception):
    """Raised by the hook once the block has run: the rest of the model is not needed."""


def catch_block_io(
    model: nn.Module, block: nn.Module, inputs: Sequence[np.ndarray], last: nn.Module | None = None
) -> tuple[tuple[Any, ...], dict[str, Any], torch.Tensor]:
    """Run ``model`` on one batch and return the ``(args, kwargs)`` its ``block`` received and
    the first output of ``last`` (default: the block); the model stops right after that."""
    caught: dict[str, Any] = {}

    def before(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        caught["args"], caught["kwargs"] = args, kwargs

    def after(_m: nn.Module, _args: Any, _kwargs: Any, output: Any) -> None:
        caught["output"] = first_tensor(output)
        raise _Caught

    handles = [
        block.register_forward_pre_hook(before, with_kwargs=True),
        (last or block).register_forward_hook(after, with_kwargs=True),
    ]
    try:
        # no_grad, not inference_mode: caught tensors become buffers that torch.export reads.
        with torch.no_grad():
            model(*(torch.from_numpy(np.ascontiguousarray(x)) for x in inputs))
    except _Caught:
        pass
    finally:
        for handle in handles:
            handle.remove()
    if "output" not in caught:
        raise WorkloadError(f"the model never called its block {type(block).__name__}")
    return caught["args"], caught["kwargs"], caught["output"]


def argument_names(block: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """A name per pytree leaf of ``(args, kwargs)``: the parameter it was passed as
    (``hidden_states``), numbered when one argument holds several tensors."""
    params = [
        p.name
        for p in inspect.signature(block.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    named = [(params[i] if i < len(params) else f"arg{i}", a) for i, a in enumerate(args)]
    names: list[str] = []
    for name, value in [*named, *kwargs.items()]:
        count = len(pytree.tree_leaves(value))
        names.extend([name] if count == 1 else [f"{name}_{i}" for i in range(count)])
    return names


@dataclass(frozen=True)
class Input:
    """In a call template: the probe's ``index``-th input."""

    index: int


@dataclass(frozen=True)
class Buffer:
    """In a call template: the probe's buffer ``name`` (a caught tensor without batch axis)."""

    name: str


class BlockProbe(nn.Module):
    """A block called with the tensors it was caught receiving.

    ``forward(*inputs)`` takes the batched tensors only, in :attr:`input_names` order; the
    block's other arguments are fixed: tensors without a batch axis as buffers (so a precision
    cast reaches them), other values as caught. Returns the block's first output. Made by
    :func:`block_probe`, which gives each probe a class whose ``forward`` names its inputs.
    """

    input_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, block: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.block = block
        #: The caught call with each tensor replaced by an :class:`Input` or :class:`Buffer`.
        self.call_args = args
        self.call_kwargs = kwargs

    def _fill(self, value: Any, inputs: tuple[torch.Tensor, ...]) -> Any:
        if isinstance(value, Input):
            return inputs[value.index]
        if isinstance(value, Buffer):
            return getattr(self, value.name)
        if isinstance(value, tuple) and hasattr(value, "_fields"):  # a namedtuple
            return type(value)(*(self._fill(v, inputs) for v in value))
        if isinstance(value, list | tuple):
            return type(value)(self._fill(v, inputs) for v in value)
        if isinstance(value, dict):
            return {k: self._fill(v, inputs) for k, v in value.items()}
        return value

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        args = self._fill(self.call_args, inputs)
        kwargs = self._fill(self.call_kwargs, inputs)
        return first_tensor(self.block(*args, **kwargs))

    def __reduce__(self) -> tuple[Any, ...]:
        # The class is made per input names at run time: pickle (the stage cache, Ray) names
        # it by those names and rebuilds it on load.
        return (_empty_probe, (self.input_names,), self.__getstate__())


@functools.cache
def probe_class(input_names: tuple[str, ...]) -> type[BlockProbe]:
    """A :class:`BlockProbe` whose ``forward`` declares one parameter per input.

    ``torch.export`` (PT2E quantization) matches per-input dynamic shapes to ``forward``'s
    named parameters, which ``*inputs`` does not have; the signature says them.
    """

    def forward(self: BlockProbe, *inputs: torch.Tensor) -> torch.Tensor:
        return BlockProbe.forward(self, *inputs)

    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", kind), *(inspect.Parameter(n, kind) for n in input_names)]
    )
    return type(
        "BlockProbe",
        (BlockProbe,),
        {"forward": forward, "input_names": input_names, "__module__": __name__},
    )


def _empty_probe(input_names: tuple[str, ...]) -> BlockProbe:
    cls = probe_class(input_names)
    return cls.__new__(cls)


def block_probe(
    block: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    input_names: Sequence[str],
    buffers: dict[str, torch.Tensor],
) -> BlockProbe:
    """The probe module: ``block`` called as ``block(*args, **kwargs)`` (templates holding
    :class:`Input` and :class:`Buffer` marks), forward taking ``input_names``."""
    names = tuple(n if n.isidentifier() else f"input_{i}" for i, n in enumerate(input_names))
    if len(set(names)) != len(names):
        names = tuple(f"input_{i}" for i in range(len(names)))
    module = probe_class(names)(block, args, kwargs)
    for name, tensor in buffers.items():
        module.register_buffer(name, tensor)
    return module.eval()
