"""Runnable examples of conjure_async (``python -m examples.<name>``)."""
