"""Loading an exported bundle: check every file's SHA-256, then serve it with its backend.

A bundle is a folder written by :func:`autoopt.export` (see :mod:`autoopt.export` for its
layout). :func:`load` refuses a bundle whose files differ from what ``manifest.json``
records, before any of them is deserialized, and returns a :class:`BundleRunner` that takes
the workload's model inputs (one array per ``input_names`` entry, batch first, exactly what
the workload's splits hold) and returns the first output as float32 numpy::

    runner = autoopt.load("bundles/digits")
    logits = runner(images)              # or runner.run([images]), runner(image=images)

Pickled PyTorch modules (``model.pt``) execute code when unpickled; the hash check makes sure
the file is the one that was exported, so only load bundles whose manifest you trust.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
from pydantic import ValidationError

from autoopt.errors import BackendUnavailableError, ExportError
from autoopt.export.manifest import FORMAT_VERSION, Manifest, ModelFormat
from autoopt.plugins import Runner

if TYPE_CHECKING:
    from autoopt.workloads import Workload

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
EXAMPLE_INPUTS = "example_inputs.npz"
EXAMPLE_OUTPUTS = "example_outputs.npy"
#: Model forms a bundle may hold (``manifest["model"]["format"]``).
MODEL_FORMATS = get_args(ModelFormat)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_files(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` except the manifest, by POSIX relative path."""
    return {
        p.relative_to(directory).as_posix(): file_sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.relative_to(directory).as_posix() != MANIFEST
    }


def read_manifest(directory: str | Path) -> dict[str, Any]:
    root = Path(directory)
    path = root / MANIFEST
    if not root.is_dir():
        raise ExportError(f"{root}: no such bundle folder")
    if not path.is_file():
        raise ExportError(
            f"{path}: missing; {root} is not an autoopt bundle (write one with `autoopt export`)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{path}: not valid JSON ({e}); re-export the bundle") from e
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ExportError(
            f"{path}: format_version {version!r} is not supported by this autoopt "
            f"(supports {FORMAT_VERSION}); re-export the bundle or upgrade autoopt"
        )
    if not isinstance(manifest.get("files"), dict) or not manifest["files"]:
        raise ExportError(f"{path}: 'files' lists no file hashes; re-export the bundle")
    try:
        Manifest.model_validate(manifest)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ExportError(f"{path}: {where}: {err['msg']}; re-export the bundle") from e
    return manifest


def check(directory: str | Path) -> dict[str, Any]:
    """Verify every file of a bundle against its manifest; returns the manifest.

    Raises :class:`ExportError` naming the first file that is missing, modified or unlisted.
    """
    root = Path(directory)
    manifest = read_manifest(root)
    recorded: dict[str, str] = manifest["files"]
    for rel, digest in sorted(recorded.items()):
        path = root / rel
        if not path.is_file():
            raise ExportError(
                f"{path}: missing from the bundle (manifest.json lists it); re-export it"
            )
        actual = file_sha256(path)
        if actual != digest:
            raise ExportError(
                f"{path}: SHA-256 mismatch (manifest {digest[:12]}…, file {actual[:12]}…): "
                "the bundle was modified after export; re-export it"
            )
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and rel != MANIFEST and rel not in recorded:
            raise ExportError(
                f"{path}: not listed in manifest.json: the bundle was modified after export; "
                "remove the file or re-export"
            )
    return manifest


def _load_artifact(root: Path, manifest: dict[str, Any]) -> Any:
    from autoopt.artifacts import OnnxArtifact, OpenVinoArtifact, TorchArtifact

    model = manifest.get("model", {})
    form, file = model.get("format"), model.get("file", "")
    path = root / file
    if form == "onnx":
        return OnnxArtifact(path)
    if form == "openvino":
        precision = model.get("inference_precision")
        if precision not in ("f32", "bf16", "f16"):
            raise ExportError(
                f"{root / MANIFEST}: model.inference_precision {precision!r} is not one of "
                "f32, bf16, f16; re-export the bundle"
            )
        return OpenVinoArtifact(path, precision)
    if form == "exported_program":
        import torch

        try:
            program = torch.export.load(str(path))
        except Exception as e:  # noqa: BLE001 - a version mismatch or a corrupt archive
            raise ExportError(
                f"{path}: torch.export.load failed ({type(e).__name__}: {e}); the bundle was "
                f"written with torch {manifest.get('versions', {}).get('torch', '?')}"
            ) from e
        from autoopt.torch_export import ExportedModule

        return TorchArtifact(ExportedModule(program).eval())
    if form == "pickled_module":
        import torch

        ref = model.get("code_reference") or ""
        module_name = ref.partition(":")[0]
        if module_name:
            try:
                importlib.import_module(module_name)
            except Exception as e:  # noqa: BLE001 - report any import failure the same way
                raise ExportError(
                    f"{path}: unpickling needs '{ref}' importable, and importing "
                    f"'{module_name}' failed: {e}; install or put it on PYTHONPATH"
                ) from e
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecations inside quantized modules' state
                module = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as e:  # noqa: BLE001
            raise ExportError(
                f"{path}: cannot unpickle the module: {type(e).__name__}: {e}"
            ) from e
        module.eval()
        return TorchArtifact(module)
    raise ExportError(
        f"{root / MANIFEST}: model.format {form!r} is unknown; allowed: {', '.join(MODEL_FORMATS)}"
    )


class BundleRunner(Runner):
    """A loaded bundle: call it with the workload's model inputs, get the first output."""

    def __init__(self, directory: Path, manifest: dict[str, Any], runner: Runner) -> None:
        self.directory = directory
        self.manifest = manifest
        self._runner = runner
        workload = manifest.get("workload", {})
        self.input_names: tuple[str, ...] = tuple(workload.get("input_names", ()))
        self.output_names: tuple[str, ...] = tuple(workload.get("output_names", ()))
        self.metric_name: str = workload.get("metric_name", "accuracy")

    def __repr__(self) -> str:
        study = self.manifest.get("study", {})
        return (
            f"BundleRunner({str(self.directory)!r}, trial {study.get('trial')} of "
            f"'{study.get('name')}', {self.manifest.get('recipe_str', '')})"
        )

    def _inputs(self, args: Sequence[Any], named: Mapping[str, Any]) -> list[np.ndarray]:
        if len(args) == 1 and isinstance(args[0], Mapping) and not named:
            named, args = args[0], ()
        if named:
            if args:
                raise TypeError("pass the inputs either by position or by name, not both")
            unknown = sorted(set(named) - set(self.input_names))
            missing = [n for n in self.input_names if n not in named]
            if unknown or missing:
                raise TypeError(
                    f"inputs {sorted(named)} do not match the bundle's input_names "
                    f"{list(self.input_names)}"
                )
            args = [named[n] for n in self.input_names]
        if len(args) != len(self.input_names):
            raise TypeError(
                f"the bundle takes {len(self.input_names)} input(s) {list(self.input_names)}, "
                f"got {len(args)}"
            )
        return [np.asarray(x) for x in args]

    def __call__(self, *inputs: Any, **named: Any) -> np.ndarray:
        """Run one batch: arrays in ``input_names`` order, by name, or one mapping."""
        return self._runner.run(self._inputs(inputs, named))

    def run(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        return self._runner.run(self._inputs(list(inputs), {}))

    def timed(self, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        return self._runner.timed(self._inputs(list(inputs), {}))

    def describe(self) -> dict[str, Any]:
        return {**self._runner.describe(), "bundle": str(self.directory)}

    def example_inputs(self) -> tuple[np.ndarray, ...]:
        """The few evaluation inputs stored in the bundle at export, in ``input_names`` order."""
        with np.load(self.directory / EXAMPLE_INPUTS) as data:
            return tuple(data[n] for n in self.input_names)

    def example_outputs(self) -> np.ndarray:
        """What this bundle returned for :meth:`example_inputs` when it was exported."""
        return np.load(self.directory / EXAMPLE_OUTPUTS)

    def evaluate(self, workload: Workload | None = None) -> dict[str, float]:
        """Score the bundle on the workload's evaluation split (loaded by name if not given)."""
        from autoopt.measure import predict, teacher_outputs

        if workload is None:
            from autoopt.workloads import load_workload

            w = self.manifest["workload"]
            workload = load_workload(w["name"], w.get("options", {}))
        outputs = predict(self, workload)
        scores = workload.metric(outputs, workload.evaluation, teacher_outputs(workload))
        return {k: float(v) for k, v in scores.items()}


def load(
    directory: str | Path, *, threads: int | None = None, device: str | None = None
) -> BundleRunner:
    """Load an exported bundle after checking every file's SHA-256 against its manifest.

    Args:
        directory: the bundle folder written by :func:`autoopt.export`.
        threads: intra-op threads; default: the number the trial was measured with.
        device: "cpu" or "cuda"; default: the device of the target the trial was measured on.

    Raises:
        ExportError: a file is missing, modified or unlisted, or the model cannot be loaded.
        BackendUnavailableError: the bundle's backend cannot run on this host.
    """
    from autoopt import plugins
    from autoopt.resolve import make_step

    root = Path(directory)
    manifest = check(root)
    backend = manifest.get("backend", {})
    key = backend.get("key", "")
    try:
        backend_cls = plugins.get_backend(key)
        step = make_step(key, backend.get("config", {}))
    except Exception as e:  # noqa: BLE001 - an unknown key or config: the bundle is unusable here
        raise ExportError(f"{root / MANIFEST}: backend {key!r}: {e}") from e
    reason = backend_cls.unavailable_reason()
    if reason:
        raise BackendUnavailableError(
            f"{root}: the bundle runs on {key}, which cannot run here: {reason}"
        )
    on = device or str(backend.get("device", "cpu"))
    if on == "cuda":
        from autoopt import hardware

        if not hardware.current().cuda_devices:
            raise BackendUnavailableError(
                f"{root}: the bundle was measured on a cuda target, and PyTorch sees no CUDA "
                "device here; load it with device='cpu' to run it on the CPU"
            )
    artifact = _load_artifact(root, manifest)
    n_threads = threads or int(backend.get("threads", 1))
    try:
        runner = backend_cls().compile(artifact, step.config, n_threads, on)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"{root}: {key} cannot load the model: {type(e).__name__}: {e}") from e
    return BundleRunner(root, manifest, runner)


__all__ = [
    "BundleRunner",
    "FORMAT_VERSION",
    "MANIFEST",
    "check",
    "hash_files",
    "load",
    "read_manifest",
]
