"""Ingest gateways (DIMSE and STOW-RS): the only code that accepts bytes from outside."""
