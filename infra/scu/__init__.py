"""DIMSE service users for the `pacs` command line: echo, store, find, move, get against any AE."""
