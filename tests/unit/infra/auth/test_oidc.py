"""JWTs from an external OIDC provider, checked against a JWKS served by a local fixture."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from infra.auth.oidc import OidcVerifier
from infra.auth.tokens import InvalidToken
from infra.settings import OidcSettings

ISSUER = "https://idp.example/realms/hospital"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Jwks(BaseHTTPRequestHandler):
    fetches = 0

    def do_GET(self) -> None:
        Jwks.fetches += 1
        public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
        body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def verifier() -> Iterator[OidcVerifier]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Jwks.fetches = 0
    yield OidcVerifier(
        OidcSettings(
            issuer=ISSUER,
            audience="pacs",
            jwks_url=f"http://127.0.0.1:{server.server_address[1]}/certs",
            roles_claim="realm_access.roles",
            role_map={"pacs-radiologists": "radiologist", "pacs-admins": "admin"},
        )
    )
    server.shutdown()
    server.server_close()


def sign(key: Any = KEY, **claims: Any) -> str:
    payload = {
        "iss": ISSUER,
        "aud": "pacs",
        "exp": int(time.time()) + 300,
        "preferred_username": "dr.house",
        "realm_access": {"roles": ["pacs-radiologists", "offline_access"]},
        **claims,
    }
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})


def test_a_providers_token_maps_its_roles(verifier: OidcVerifier) -> None:
    token = sign()
    assert verifier.issued_by_it(token)
    identity = verifier.verify(token)
    assert identity.username == "oidc:dr.house"
    assert identity.roles == {"radiologist"}  # offline_access maps to nothing
    verifier.verify(sign())
    assert Jwks.fetches == 1  # the keys are cached


@pytest.mark.parametrize(
    ("claims", "key", "reason"),
    [
        ({"aud": "another-app"}, KEY, "(?i)audience"),
        ({"iss": "https://evil.example"}, KEY, "(?i)issuer"),
        ({"exp": int(time.time()) - 60}, KEY, "expired"),
        ({}, OTHER_KEY, "Signature"),
    ],
)
def test_a_token_it_did_not_issue_for_us_is_refused(
    verifier: OidcVerifier, claims: dict[str, Any], key: Any, reason: str
) -> None:
    with pytest.raises(InvalidToken, match=reason):
        verifier.verify(sign(key, **claims))


def test_an_hs256_token_claiming_the_issuer_is_refused(verifier: OidcVerifier) -> None:
    forged = jwt.encode(
        {"iss": ISSUER, "aud": "pacs", "exp": int(time.time()) + 60},
        "guessed",
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
