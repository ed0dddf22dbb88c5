"""Tokens, API keys, password hashes and the secrets kept in the data dir."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from infra.auth import api_keys
from infra.auth.passwords import hash_password, verify_password
from infra.auth.permissions import Permission, permissions_of
from infra.auth.secrets import load_or_create
from infra.auth.tokens import InvalidToken, ServiceToken, TokenIssuer


def test_token_round_trip_and_refusals() -> None:
    issuer = TokenIssuer(b"a" * 32, 600)
    token, claims = issuer.issue("alice", {"radiologist"})
    assert issuer.verify(token) == claims
    assert claims.roles == frozenset({"radiologist"}) and claims.kind == "access"
    with pytest.raises(InvalidToken, match="not valid"):
        TokenIssuer(b"b" * 32, 600).verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify(issuer.issue("alice", set(), ttl_seconds=-60)[0])
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidToken):
        issuer.verify(tampered)
    session, claims = issuer.issue("alice", set(), kind="session")
    assert claims.csrf and issuer.verify(session).csrf == claims.csrf


def test_service_token_is_reused_until_half_its_life() -> None:
    source = ServiceToken(TokenIssuer(b"a" * 32, 600), "gateway")
    first = source()
    assert source() == first
    claims = TokenIssuer(b"a" * 32, 600).verify(first)
    assert claims.kind == "service" and claims.subject == "service:gateway"
    assert Permission.INTERNAL in permissions_of(claims.roles)


def test_api_key_is_shown_once_and_stored_as_a_hash() -> None:
    key_id, key, digest = api_keys.new_api_key()
    assert key.startswith("pacs_") and digest not in key
    parts = api_keys.split_key(key)
    assert parts is not None and parts[0] == key_id
    assert api_keys.matches(parts[1], digest)
    assert not api_keys.matches(parts[1] + "x", digest)
    assert api_keys.split_key("eyJhbGciOi.not.a.key") is None


def test_password_hash_is_argon2id_and_checks_the_password() -> None:
    stored = hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "correct horse battery staple")
    assert not verify_password(stored, "Correct horse battery staple")
    assert not verify_password(None, "anything")  # no such user
    assert not verify_password("not a hash", "anything")


def test_roles_grant_their_permissions_only() -> None:
    assert permissions_of(["auditor"]) == {Permission.AUDIT_READ}
    assert Permission.STUDIES_READ not in permissions_of(["technologist"])
    assert permissions_of(["admin"]) == set(Permission)
    assert permissions_of(["no such role"]) == frozenset()


def test_secret_is_created_once_0600_even_when_processes_race(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "token-key"
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: load_or_create(path), range(16)))
    assert len({value for value, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path) == (results[0][0], False)
    assert list(path.parent.iterdir()) == [path]  # no temporary files left behind
