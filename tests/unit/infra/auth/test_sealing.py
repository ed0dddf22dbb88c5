"""Sealed node credentials: opened by any process with the same token key, never by another."""

from __future__ import annotations

import pytest

from infra.auth.sealing import Sealer, SealError


def test_a_sealed_key_opens_with_the_same_token_key_only() -> None:
    sealed = Sealer(b"k" * 32).seal("pacs_0123456789ab_secret")
    assert "secret" not in sealed
    assert Sealer(b"k" * 32).unseal(sealed) == "pacs_0123456789ab_secret"
    with pytest.raises(SealError, match="token key"):
        Sealer(b"x" * 32).unseal(sealed)
    with pytest.raises(SealError):
        Sealer(b"k" * 32).unseal("not a seal")
