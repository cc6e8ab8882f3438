"""What machine a measurement ran on, and which precisions it runs natively."""

from __future__ import annotations

import functools
import os
import platform
import socket
from dataclasses import asdict, dataclass, field
from importlib import metadata

_FLAGS_OF_INTEREST = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
)
_PACKAGES = ("torch", "onnxruntime", "onnx", "openvino", "nncf", "optuna", "ray", "numpy")


@dataclass(frozen=True)
class Hardware:
    cpu_model: str
    logical_cores: int
    physical_cores: int | None
    cpu_flags: tuple[str, ...]
    memory_gb: float
    hostname: str
    platform: str
    python: str
    versions: dict[str, str] = field(default_factory=dict)
    cuda_devices: tuple[str, ...] = ()

    @property
    def native_bf16(self) -> bool:
        return "avx512_bf16" in self.cpu_flags or "amx_bf16" in self.cpu_flags

    @property
    def native_fp16(self) -> bool:
        return "avx512_fp16" in self.cpu_flags or "amx_fp16" in self.cpu_flags

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["cpu_flags"] = list(self.cpu_flags)
        d["cuda_devices"] = list(self.cuda_devices)
        return d

    def fingerprint(self) -> str:
        return f"{self.cpu_model} x{self.logical_cores} | torch {self.versions.get('torch', '?')}"


def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and ":" in line:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                if flags and model:
                    break
    except OSError:
        pass
    return model, tuple(f for f in _FLAGS_OF_INTEREST if f in flags)


def package_version(name: str) -> str:
    """An installed distribution's version, or ``not installed``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@functools.cache
def current() -> Hardware:
    import psutil

    model, flags = _cpuinfo()
    cuda: tuple[str, ...] = ()
    try:
        import torch

        if torch.cuda.is_available():
            cuda = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    except Exception:  # noqa: BLE001 - a broken CUDA install means no CUDA here
        cuda = ()
    return Hardware(
        cpu_model=model,
        logical_cores=os.cpu_count() or 1,
        physical_cores=psutil.cpu_count(logical=False),
        cpu_flags=flags,
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        python=platform.python_version(),
        versions={p: package_version(p) for p in _PACKAGES},
        cuda_devices=cuda,
    )
