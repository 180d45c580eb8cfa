"""The runtime of one guarded call: checkpoints, monitor, BCI, decider, handler, policies, guard, middleware.

Everything that happens while a guarded answer streams lives in this subpackage:

* :mod:`~finece_guard.runtime.checkpoints` — where to score (paragraph ends, periodic, entropy);
* :mod:`~finece_guard.runtime.monitor` — one run's tokens, checkpoints and pending scores;
* :mod:`~finece_guard.runtime.bci` — Backward Confidence Integration (eq. 5), retrospective and look-ahead;
* :mod:`~finece_guard.runtime.policies` — pure ``decide(view) -> Decision`` objects and their precedence;
* :mod:`~finece_guard.runtime.decider` — the one in-stream decider (abort, early retrieval, look-ahead);
* :mod:`~finece_guard.runtime.handler` — the LangChain callback handler that feeds it and raises its stops;
* :mod:`~finece_guard.runtime.session` — the attempt loop (retry, retrieve, kept answer, verdict);
* :mod:`~finece_guard.runtime.guard` — ``FineCEGuard``, the Runnable front end in every mode;
* :mod:`~finece_guard.runtime.middleware` — the ``create_agent`` middleware (extra ``agents``).

Shared helpers (message text, the passage template, streamed-token parsing) are in
:mod:`~finece_guard.runtime.text`; the one sync/async bridge is :mod:`finece_guard.sync_bridge`.
The runtime never imports ``data/`` or the HTTP generator for a string or a parser.
"""
