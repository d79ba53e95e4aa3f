"""The monitoring agent: a concurrent pipeline over the native and local backends.

Run it with ``python -m examples.monitoring_agent`` (offline unless
``ANTHROPIC_API_KEY`` is set), or call :func:`run_monitoring_demo`.
"""

from .pipeline import MonitoringResult, ServiceOutcome, run_monitoring_demo

__all__ = ["MonitoringResult", "ServiceOutcome", "run_monitoring_demo"]
