"""DIMSE association plumbing shared by our SCPs and SCUs: sockets, contexts, reports."""
