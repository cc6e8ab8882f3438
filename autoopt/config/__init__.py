"""Experiment and search-space schemas, loading and validation."""

from autoopt.config._experiment import (
    DEFAULT_STORAGE,
    OBJECTIVE_DIRECTIONS,
    AccuracyConstraint,
    Budget,
    EarlyRejectConfig,
    ExecutionConfig,
    Experiment,
    LatencyConfig,
    RungConfig,
    SamplerConfig,
    SeedCandidate,
    Target,
    VerifyConfig,
    WorkloadRef,
)
from autoopt.config._load import load_experiment, load_search_space
from autoopt.config._space import ParameterSpec, SearchSpace

__all__ = [
    "DEFAULT_STORAGE",
    "OBJECTIVE_DIRECTIONS",
    "AccuracyConstraint",
    "Budget",
    "EarlyRejectConfig",
    "ExecutionConfig",
    "Experiment",
    "LatencyConfig",
    "ParameterSpec",
    "RungConfig",
    "SamplerConfig",
    "SearchSpace",
    "SeedCandidate",
    "Target",
    "VerifyConfig",
    "WorkloadRef",
    "load_experiment",
    "load_search_space",
]
