"""The host a self-test result holds for: CPU model, the CPU features kernels are chosen by,
and the versions of the libraries that generate or ship those kernels."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from autoopt import hardware

#: Libraries whose version changes the kernels a path runs (or, for transformers, the
#: block's code the probe runs).
LIBRARIES = ("torch", "torchao", "onnxruntime", "onnx", "numpy", "transformers")
#: The features shown in the host line, present or not: the ones kernels dispatch on here.
SHOWN_FEATURES = ("avx512_vnni", "avx512_bf16", "avx512_fp16", "amx")


@dataclass(frozen=True)
class HostInfo:
    cpu_model: str
    #: The CPU flags :mod:`autoopt.hardware` tracks (avx2 ... amx_fp16) that this CPU has.
    cpu_flags: tuple[str, ...]
    versions: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    #: The CUDA devices, for a cuda self-test.
    cuda_devices: tuple[str, ...] = ()

    def has(self, feature: str) -> bool:
        """A CPU flag, or ``amx`` for any AMX unit."""
        if feature == "amx":
            return any(f.startswith("amx") for f in self.cpu_flags)
        return feature in self.cpu_flags

    def describe(self) -> str:
        """``AMD EPYC 9B14 (avx512_vnni, avx512_bf16, no avx512_fp16, no amx)``; a cuda
        self-test names the GPU too."""
        features = ", ".join(f if self.has(f) else f"no {f}" for f in SHOWN_FEATURES)
        line = f"{self.cpu_model} ({features})"
        if self.device == "cuda":
            line += f" with {', '.join(self.cuda_devices) or 'no CUDA device'}"
        return line

    def describe_versions(
        self, names: tuple[str, ...] = ("torch", "torchao", "onnxruntime")
    ) -> str:
        """``torch 2.13.0, torchao 0.18.0, onnxruntime 1.32.0``."""
        return ", ".join(f"{n} {self.versions.get(n, '?')}" for n in names)

    def fingerprint(self) -> dict[str, Any]:
        """What a cached result is valid for: everything but the hostname (two identical
        machines share results)."""
        return {
            "cpu_model": self.cpu_model,
            "cpu_flags": sorted(self.cpu_flags),
            "versions": dict(sorted(self.versions.items())),
            "device": self.device,
            "cuda_devices": list(self.cuda_devices),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.fingerprint(), "description": self.describe()}


@functools.cache
def current_host(device: str = "cpu") -> HostInfo:
    hw = hardware.current()
    return HostInfo(
        cpu_model=hw.cpu_model,
        cpu_flags=tuple(hw.cpu_flags),
        versions={name: hardware.package_version(name) for name in LIBRARIES},
        device=device,
        cuda_devices=tuple(hw.cuda_devices) if device == "cuda" else (),
    )
