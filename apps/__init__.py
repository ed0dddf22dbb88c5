"""Processes and commands: the top layer, the only code that wires the others together."""
