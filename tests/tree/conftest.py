"""Agent processes for these tests (see tests/agentproc.py)."""

from agentproc import agents  # noqa: F401
