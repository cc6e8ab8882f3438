"""Finding a model's layout: the registered ones first (newest first), then the bundled ones."""

from __future__ import annotations

from torch import nn

from autoopt.errors import WorkloadError
from autoopt.layouts._families import BUILTIN
from autoopt.layouts._layout import Layout, ModelLayout

_REGISTERED: dict[str, Layout] = {}

#: How a user adds a layout; every refusal for want of one ends with it.
HOW_TO = (
    "register one with autoopt.layouts.register_layout(Layout(name=..., model_classes=(...,), "
    "blocks=..., attn_q=..., attn_k=..., attn_v=..., attn_out=..., ffn_in=..., ffn_out=...)) "
    "in the module that defines the workload (README: Model layouts)"
)


def register_layout(layout: Layout) -> Layout:
    """Make ``layout`` known to every technique in this process. It is tried before the
    bundled layouts, and replaces a registered layout of the same name. Register it where
    the workload is defined, so that every worker that loads the workload has it."""
    _REGISTERED.pop(layout.name, None)
    _REGISTERED[layout.name] = layout
    return layout


def unregister_layout(name: str) -> None:
    _REGISTERED.pop(name, None)


def known_layouts() -> list[Layout]:
    """Every layout in the order models are matched against them."""
    return [*reversed(_REGISTERED.values()), *BUILTIN]


def find_layout(model: nn.Module) -> ModelLayout | None:
    """The layout of the first module of ``model`` (itself, then its submodules in order)
    that a known layout describes and whose structure it matches; None when there is none.
    A wrapper is searched through: MiniLM's embedder finds the BertModel it holds."""
    layouts = known_layouts()
    for path, module in model.named_modules():
        for layout in layouts:
            if layout.describes(module) and layout.mismatch(module) is None:
                return ModelLayout(layout, model, path)
    return None


def missing_layout_reason(model: nn.Module) -> str:
    """Why ``model`` has no layout, and how to give it one."""
    layouts = known_layouts()
    for path, module in model.named_modules():
        for layout in layouts:
            if layout.describes(module) and (problem := layout.mismatch(module)):
                # A wrapper carries its backbone's config (BertForSequenceClassification's
                # model_type is "bert"): only a backbone that matches nowhere deeper counts.
                if not any(layout.mismatch(inner) is None for _, inner in module.named_modules()):
                    where = f"'{path}'" if path else "the model"
                    return (
                        f"{where} ({type(module).__name__}) looks like layout "
                        f"'{layout.name}', but {problem}; {HOW_TO}"
                    )
    names = ", ".join(layout.name for layout in layouts)
    return (
        f"{type(model).__name__} has no model layout (known: {names}; found by Hugging Face "
        f"config.model_type or by class); {HOW_TO}"
    )


def layout_of(model: nn.Module) -> ModelLayout:
    """``model``'s layout; raises WorkloadError with the reason (and how to add one)."""
    found = find_layout(model)
    if found is None:
        raise WorkloadError(missing_layout_reason(model))
    return found
