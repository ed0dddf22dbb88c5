"""Bad upper-layer PDUs (PS3.8 9.3) for fuzzing a DICOM acceptor over a raw socket.

`bad_pdu(rng)` builds one input from a seeded `random.Random`: a valid A-ASSOCIATE-RQ
mutated (bit flips, truncation, wrong lengths, oversized items), random PDU types, P-DATA /
A-RELEASE before any association, or plain noise. The unit test draws the seed from
hypothesis (so a failure is replayable from its seed); bench/fuzz_gateway.py draws 100,000s.
"""

from __future__ import annotations

import random
import struct


def item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def associate_rq(called: str = "PACS", calling: str = "FUZZ") -> bytes:
    """A valid A-ASSOCIATE-RQ for Verification, Explicit/Implicit VR Little Endian."""
    contexts = item(
        0x20,
        bytes([1, 0, 0, 0])
        + item(0x30, b"1.2.840.10008.1.1")
        + item(0x40, b"1.2.840.10008.1.2")
        + item(0x40, b"1.2.840.10008.1.2.1"),
    )
    user = item(0x50, item(0x51, struct.pack(">I", 16382)) + item(0x52, b"1.2.3.4"))
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16).encode()
        + calling.ljust(16).encode()
        + bytes(32)
        + item(0x10, b"1.2.840.10008.3.1.1.1")
        + contexts
        + user
    )
    return pdu(0x01, body)


def pdu(kind: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack(">BBI", kind, 0, len(body) if length is None else length) + body


def _flip(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(out))
        out[at] = rng.randrange(256) if rng.random() < 0.5 else out[at] ^ (1 << rng.randrange(8))
    return bytes(out)


def _lengths(rng: random.Random, data: bytes) -> bytes:
    # Overwrite a 2- or 4-byte big-endian field with an extreme value: item lengths (at
    # offsets of sub-items) and the PDU length itself.
    out = bytearray(data)
    at = rng.randrange(len(out) - 4)
    value = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, len(out), len(out) + 1])
    if rng.random() < 0.5:
        out[at : at + 2] = struct.pack(">H", value & 0xFFFF)
    else:
        out[at : at + 4] = struct.pack(">I", value)
    return bytes(out)


def bad_pdu(rng: random.Random) -> tuple[str, bytes]:
    """(kind of mutation, bytes) for one fuzz input; the bytes are never a valid request."""
    valid = associate_rq(calling=rng.choice(["FUZZ", "CT1", "", "X" * 16]))
    kind = rng.choice(
        [
            "flip",
            "truncate",
            "lengths",
            "oversized",
            "item-noise",
            "wrong-type",
            "pdata-first",
            "release-first",
            "noise",
        ]
    )
    if kind == "flip":
        data = _flip(rng, valid)
    elif kind == "truncate":
        data = valid[: rng.randrange(1, len(valid))]
    elif kind == "lengths":
        data = _lengths(rng, valid)
    elif kind == "oversized":
        # Announces far more than is sent: the acceptor must not allocate or wait for it all.
        data = pdu(rng.choice([0x01, 0x04, 0x05]), valid[6:], length=rng.choice([2**31, 2**32 - 1]))
    elif kind == "item-noise":
        data = valid + item(rng.randrange(256), rng.randbytes(rng.randrange(64)))
        data = pdu(0x01, data[6:])
    elif kind == "wrong-type":
        data = pdu(rng.choice([0x00, 0x02, 0x03, 0x06, 0x07, 0x08, 0xFF]), valid[6:])
    elif kind == "pdata-first":
        pdv = struct.pack(">IBB", rng.randrange(2**32), 1, rng.randrange(256))
        data = pdu(0x04, pdv + rng.randbytes(rng.randrange(32)))
    elif kind == "release-first":
        data = pdu(rng.choice([0x05, 0x06]), bytes(4))
    else:
        data = rng.randbytes(rng.randrange(1, 512))
    return kind, data
