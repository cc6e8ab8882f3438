"""Search: the Optuna controller, the Ray executor, storage and the read-side records."""

from autoopt.search.controller import Controller, RunSummary
from autoopt.search.records import StudyRecord, TrialRecord, study_record, trial_record
from autoopt.search.storage import load_optuna_study, normalize_url, open_storage

__all__ = [
    "Controller",
    "RunSummary",
    "StudyRecord",
    "TrialRecord",
    "load_optuna_study",
    "normalize_url",
    "open_storage",
    "study_record",
    "trial_record",
]
