"""Export: rebuild a trial as it was measured, write it as a self-verifying bundle, load one."""

from autoopt.export._export import ExportResult, export_trial
from autoopt.export._inputs import exportable_trial
from autoopt.export._verify import DEFAULT_ACCURACY_TOLERANCE, Verification
from autoopt.export.bundle import BundleRunner, load
from autoopt.export.manifest import Manifest

__all__ = [
    "DEFAULT_ACCURACY_TOLERANCE",
    "BundleRunner",
    "ExportResult",
    "Manifest",
    "Verification",
    "export_trial",
    "exportable_trial",
    "load",
]
