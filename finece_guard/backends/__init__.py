"""How scores and generations are obtained: OpenAI-compatible (vLLM) HTTP backends, an
in-process transformers scorer, and the vLLM server launcher."""
