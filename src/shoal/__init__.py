"""shoal: run work across a fleet of Linux nodes."""

__version__ = "0.1.0"
