"""Transfer syntaxes whose pixel data is not encapsulated, in our order of preference.

One list for the gateway's negotiation (order matters: pynetdicom picks by our order),
the header description (OW vs OB pixel data) and the transcoder (rewrite vs decode).
"""

from __future__ import annotations

NATIVE_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still sent by old modalities)
)
