"""Policies: pure ``decide(trace) -> Decision`` objects (abort, retry, retrieve, filter)."""
