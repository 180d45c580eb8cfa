"""The runtime of one guarded call: checkpoints, monitor, BCI, decider, handler, policies, guard, middleware.

Everything that happens while a guarded answer streams lives in this subpackage:

* :mod:`~finece_guard.runtime.checkpoints` — where to score (paragraph ends, periodic, entropy);
* :mod:`~finece_guard.runtime.monitor` — one run's tokens, checkpoints and pending scores;
* :mod:`~finece_guard.runtime.bci` — Backward Confidence Integration (eq. 5), retrospective and look-ahead;
* :mod:`~finece_guard.runtime.policies` — pure ``decide(view) -> Decision`` objects and their precedence;
* :mod:`~finece_guard.runtime.handler` — the LangChain callback handler, the one in-stream decider;
* :mod:`~finece_guard.runtime.guard` — ``FineCEGuard``, the Runnable that carries decisions out;
* :mod:`~finece_guard.runtime.middleware` — the ``create_agent`` middleware (extra ``agents``).

The guard and the middleware import from here; the runtime never imports ``data/`` or the HTTP
generator for a string or a parser.
"""
