"""Policies: pure objects that turn a run's confidence trace into a :class:`Decision`."""

from finece_guard.policies.abort import AbortBelow
from finece_guard.policies.accept import DEFAULT_FALLBACK, AcceptAbove
from finece_guard.policies.base import CONTINUE, Action, Decision, Phase, Policy, PolicyView
from finece_guard.policies.compose import Budget, decide_in_stream, decide_regeneration, decide_verdict
from finece_guard.policies.retrieve import RetrieveBelow
from finece_guard.policies.retry import RetryBelow

__all__ = [
    "CONTINUE",
    "DEFAULT_FALLBACK",
    "AbortBelow",
    "AcceptAbove",
    "Action",
    "Budget",
    "Decision",
    "Phase",
    "Policy",
    "PolicyView",
    "RetrieveBelow",
    "RetryBelow",
    "decide_in_stream",
    "decide_regeneration",
    "decide_verdict",
]
