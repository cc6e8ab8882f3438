"""Conformance suites for plugin authors, in the manner of ``optuna.testing``.

A new technique, backend or study storage subclasses its suite once per configuration and gets
the whole battery; the bundled ones run the same suites (``tests/unit``, and PostgreSQL in
``tests/integration/test_postgres.py``). These modules import pytest: the library never
imports this package.

- :class:`TechniqueTestSuite` (:mod:`.pytest_techniques`)
- :class:`BackendTestSuite` (:mod:`.pytest_backends`)
- :class:`StorageTestSuite` (:mod:`.pytest_storages`)
- :func:`make_context`, :func:`predict`: building blocks for a method's own tests.
- :func:`tiny_bert`: an embedding workload (``workload_name = "autoopt.testing:tiny_bert"``)
  that builds in seconds; the default, ``digits_cnn``, is a logits workload.
- :func:`tiny_classifier`: a logits workload of each bundled layout family (``bert``,
  ``distilbert``, ``vit``, ``gpt2``), trained for seconds on a synthetic task.
"""

from autoopt.testing._build import make_context, predict, teacher_onnx
from autoopt.testing._families import tiny_classifier
from autoopt.testing._workloads import tiny_bert
from autoopt.testing.pytest_backends import BackendTestSuite
from autoopt.testing.pytest_storages import StorageTestSuite
from autoopt.testing.pytest_techniques import Built, TechniqueTestSuite

__all__ = [
    "BackendTestSuite",
    "Built",
    "StorageTestSuite",
    "TechniqueTestSuite",
    "make_context",
    "predict",
    "teacher_onnx",
    "tiny_bert",
    "tiny_classifier",
]
