"""autoopt: find the fastest deployable version of a trained model within an accuracy budget."""

from autoopt.api import (
    DoctorReport,
    StudySummary,
    doctor,
    export,
    list_studies,
    load_study,
    run,
    select,
    validate,
)
from autoopt.errors import (
    AutoOptError,
    BackendUnavailableError,
    CandidateError,
    CandidateRejected,
    ConfigError,
    ExportError,
    StorageError,
    WorkloadError,
)
from autoopt.export import load
from autoopt.workloads import Split, Workload

__version__ = "0.1.0"

__all__ = [
    "AutoOptError",
    "BackendUnavailableError",
    "CandidateError",
    "CandidateRejected",
    "ConfigError",
    "DoctorReport",
    "ExportError",
    "Split",
    "StorageError",
    "StudySummary",
    "Workload",
    "WorkloadError",
    "doctor",
    "export",
    "list_studies",
    "load",
    "load_study",
    "run",
    "select",
    "validate",
]
