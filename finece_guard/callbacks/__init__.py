"""LangChain callback handlers that score a streaming run (per-run state keyed by run_id)."""
