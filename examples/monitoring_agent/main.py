"""``python examples/monitoring_agent/main.py``: the demo as a script."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    pipeline = importlib.import_module("examples.monitoring_agent.pipeline")
    raise SystemExit(pipeline.main())
