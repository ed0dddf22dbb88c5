"""TLS: the node's certificates (a local CA, or hospital-issued files), the SSL contexts the
DIMSE and HTTPS listeners serve with, and TLS options for clients of remote servers."""
