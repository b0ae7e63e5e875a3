"""GRIN unlearning service: the HTTP API. Never imports torch or grin_engine at module level."""
