"""The plugin interface: technique and backend methods, their configs, and their registry.

Techniques (:mod:`autoopt.techniques`) and backends (:mod:`autoopt.backends`) build on this
package, which imports neither; the recipe and the configuration read the family declarations
here. A method is one class::

    class HalfConfig(MethodConfig):
        exclude: list[str] = []

    @register
    class HalfPrecision(Technique[HalfConfig]):
        key = "precision.half"
        family = "precision"
        Config = HalfConfig

        def apply(self, artifact: Artifact, config: HalfConfig, ctx: Context) -> Artifact: ...

:mod:`autoopt.testing` has the conformance suites a new method subclasses.
"""

from autoopt.plugins._backend import Backend, Runner
from autoopt.plugins._config import MethodConfig
from autoopt.plugins._context import Context
from autoopt.plugins._families import (
    DEFAULT_METHODS,
    FAMILIES,
    MODEL_FAMILIES,
    NONE_METHOD,
    OPTIONAL_FAMILIES,
    Family,
    TechniqueFamily,
)
from autoopt.plugins._registry import (
    get,
    get_backend,
    get_technique,
    method_keys,
    method_names,
    register,
)
from autoopt.plugins._technique import Technique

__all__ = [
    "DEFAULT_METHODS",
    "FAMILIES",
    "MODEL_FAMILIES",
    "NONE_METHOD",
    "OPTIONAL_FAMILIES",
    "Backend",
    "Context",
    "Family",
    "MethodConfig",
    "Runner",
    "Technique",
    "TechniqueFamily",
    "get",
    "get_backend",
    "get_technique",
    "method_keys",
    "method_names",
    "register",
]
