"""Search: the controller's loop, its run ledger, sampling and recombination."""

from autoopt.search.controller import Controller, EventHandler, RunSummary

__all__ = ["Controller", "EventHandler", "RunSummary"]
