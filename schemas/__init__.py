"""Pydantic models only: events, workflow inputs and API bodies.

Imports nothing else from the project so workflows can pass it through the sandbox.
"""
