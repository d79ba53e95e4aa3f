"""``python -m examples.monitoring_agent``."""

from .pipeline import main

raise SystemExit(main())
