"""Temporal workflows: deterministic, no side effects (the sandbox re-imports these files)."""
