"""The bundle's manifest as a typed model: written by export, validated by :func:`load`.

``manifest.json`` records what the bundle holds and how it was made: the study and trial, the
workload and its version, the recipe, the backend and its settings, the model file, the
recorded metrics and where they were measured, the re-verification at export, the library
versions and the SHA-256 of every other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

FORMAT_VERSION = 1
#: Model forms a bundle may hold (``model.format``).
ModelFormat = Literal["onnx", "openvino", "exported_program", "pickled_module"]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StudyInfo(_Part):
    name: str
    storage: str
    trial: int
    is_baseline: bool
    feasible: bool
    pareto: bool
    constraint: dict[str, Any]
    selection: dict[str, Any] | None = None
    #: The study attribute the trial was rebuilt from (``snapshot:<digest>``).
    snapshot: str = ""


class WorkloadInfo(_Part):
    name: str
    options: dict[str, Any]
    version: str
    metric_name: str
    output_kind: str
    input_names: list[str]
    output_names: list[str]
    #: What the inputs hold and how raw data becomes them (the workload's own words).
    input_description: str = ""


class BackendInfo(_Part):
    key: str
    config: dict[str, Any]
    threads: int
    device: str
    runner: dict[str, Any]


class ModelInfo(_Part):
    format: ModelFormat
    file: str
    code_reference: str | None = None
    fallback_reason: str | None = None
    #: OpenVINO bundles: the IR's weights file and the precision to compile it at.
    weights: str | None = None
    inference_precision: Literal["f32", "bf16", "f16"] | None = None


class BuildInfo(_Part):
    artifact_key: str
    recorded_artifact_key: str
    same_artifact_key: bool
    stages: list[dict[str, Any]]


class TritonInfo(_Part):
    model_name: str
    config: str
    model: str


class Manifest(_Part):
    format_version: int = FORMAT_VERSION
    autoopt_version: str
    created: str
    study: StudyInfo
    workload: WorkloadInfo
    recipe: dict[str, Any]
    recipe_str: str
    seed: int
    backend: BackendInfo
    model: ModelInfo
    signature: dict[str, Any] = {}
    metrics: dict[str, float]
    latency_settings: dict[str, Any]
    measured_on: dict[str, Any]
    verified_on: dict[str, Any]
    versions: dict[str, Any]
    build: BuildInfo
    triton: TritonInfo | None = None
    verification: dict[str, Any] | None = None
    files: dict[str, str]

    def readme(self, directory: Path) -> str:
        """The bundle's README: what it is, its numbers, a runnable snippet."""
        study, model, w = self.study, self.model, self.workload
        v = self.verification or {}
        names = w.input_names
        args = ", ".join(f'example["{n}"]' for n in names)
        lines = [
            f"# {w.name}: trial {study.trial} of study '{study.name}'",
            "",
            f"Recipe: `{self.recipe_str}`",
            "",
            f"Exported by autoopt {self.autoopt_version} on {self.created}. "
            f"Model: `{model.file}` ({model.format}), backend `{self.backend.key}`.",
            "",
            "| | recorded in the study | re-measured at export |",
            "| --- | --- | --- |",
            f"| {w.metric_name} | {v['accuracy_recorded']:.4f} | {v['accuracy_measured']:.4f} |",
            f"| latency p50 (batch {v['batch_size']}, {v['threads']} thread(s)) | "
            f"{v['latency_recorded_ms']:.4g} ms | {v['latency_measured_ms']:.4g} ms "
            f"(x{v['latency_ratio']:.2f}) |",
            f"| size | {self.metrics.get('size_mb', float('nan')):.3g} MB | |",
            "",
            f"Measured on: {self.measured_on.get('cpu_model', '?')}; re-measured on: "
            f"{self.verified_on.get('cpu_model', '?')}.",
            "",
            "## Run it",
            "",
            "```python",
            "import numpy as np",
            "import autoopt",
            "",
            f'BUNDLE = "{directory}"',
            "runner = autoopt.load(BUNDLE)  # checks every file's SHA-256 against manifest.json",
            f'example = np.load(BUNDLE + "/example_inputs.npz")  # inputs: {", ".join(names)}',
            f"outputs = runner({args})",
            'expected = np.load(BUNDLE + "/example_outputs.npy")',
            "print(outputs.shape, float(np.abs(outputs - expected).max()))",
            "```",
            "",
            "The runner takes the workload's model inputs (one array per input, batch first, as "
            "in the workload's data splits) and returns the first output as float32.",
            "",
            *(
                [f"Inputs and outputs: {w.input_description}.", ""]
                if w.input_description
                else [f"Inputs: {self._signature_text()}.", ""]
            ),
            *self._without_autoopt(),
        ]
        if self.triton:
            lines += [
                "",
                "## Triton Inference Server",
                "",
                f"`tritonserver --model-repository {directory}/triton` serves it as "
                f"model `{self.triton.model_name}`.",
            ]
        return "\n".join(lines) + "\n"

    def _signature_text(self) -> str:
        inputs = self.signature.get("inputs") or []
        parts = [f"{i['name']}: {i['dtype']} {tuple(i['shape'])}" for i in inputs]
        return "; ".join(parts) or ", ".join(self.workload.input_names)

    def _without_autoopt(self) -> list[str]:
        model, names = self.model, self.workload.input_names
        if model.format == "onnx":
            feed = "{" + ", ".join(f'"{n}": ...' for n in names) + "}"
            return [
                f'Without autoopt: `onnxruntime.InferenceSession("model.onnx").run(None, {feed})`.'
            ]
        if model.format == "openvino":
            hint = f'{{"INFERENCE_PRECISION_HINT": "{model.inference_precision}"}}'
            return [
                f'Without autoopt: `openvino.Core().compile_model("model.xml", "CPU", {hint})` '
                "(set the precision: the plugin's default is bf16 on CPUs with native bf16)."
            ]
        if model.format == "exported_program":
            return ['Without autoopt: `torch.export.load("model.pt2").module()(*inputs)`.']
        return [
            f'Without autoopt: `torch.load("model.pt", weights_only=False)` with '
            f"`{model.code_reference}` importable."
        ]
