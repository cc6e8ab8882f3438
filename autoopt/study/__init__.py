"""The study: its schema, its one writer and one reader, its storage, and selection by policy."""

from autoopt.study.records import StudyRecord, TrialRecord, study_record, trial_record
from autoopt.study.storage import load_optuna_study, normalize_url, open_storage

__all__ = [
    "StudyRecord",
    "TrialRecord",
    "load_optuna_study",
    "normalize_url",
    "open_storage",
    "study_record",
    "trial_record",
]
