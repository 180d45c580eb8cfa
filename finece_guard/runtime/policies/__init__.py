"""Policies: pure objects that turn a run's confidence trace into a :class:`Decision`."""

from finece_guard.runtime.bci import LookAhead
from finece_guard.runtime.policies.abort import AbortBelow
from finece_guard.runtime.policies.accept import DEFAULT_FALLBACK, AcceptAbove
from finece_guard.runtime.policies.base import CONTINUE, Action, Decision, Phase, Policy, PolicyView
from finece_guard.runtime.policies.compose import (
    Budget,
    decide_before_generation,
    decide_in_stream,
    decide_regeneration,
    decide_verdict,
)
from finece_guard.runtime.policies.retrieve import RetrieveBelow
from finece_guard.runtime.policies.retry import RetryBelow

__all__ = [
    "CONTINUE",
    "DEFAULT_FALLBACK",
    "AbortBelow",
    "AcceptAbove",
    "Action",
    "Budget",
    "Decision",
    "LookAhead",
    "Phase",
    "Policy",
    "PolicyView",
    "RetrieveBelow",
    "RetryBelow",
    "decide_before_generation",
    "decide_in_stream",
    "decide_regeneration",
    "decide_verdict",
]
