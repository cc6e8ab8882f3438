"""The web dashboard: read-only pages over the study database, built on :mod:`autoopt.api`.

``create_app`` gives the FastAPI app (``autoopt dashboard`` serves it with uvicorn);
``optuna_dashboard`` runs Optuna's own dashboard beside it, over a read-only storage.
"""

from autoopt.dashboard._app import create_app
from autoopt.dashboard._optuna import optuna_dashboard

__all__ = ["create_app", "optuna_dashboard"]
