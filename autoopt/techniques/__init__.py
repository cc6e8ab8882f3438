"""Model-optimization techniques: one module per family, each method registered by key.

The interface they implement is :mod:`autoopt.plugins`. The method modules
(:mod:`.distillation`, :mod:`.pruning`, :mod:`.quantization`, :mod:`.precision`, ...) are
imported by the registry on first lookup, not here, so that importing this package stays cheap.
"""
