"""shoal: run work across a fleet of Linux nodes.

The library starts at shoal.fanout (run, ping, facts, copy, gather); the
capabilities are shoal.fleet and shoal.gateway; `shoal` is shoal.cli.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
