"""Token checks made before the upgrade: HS256, RS256/ES256 from a JWKS, audience, claims."""

import asyncio
import json
import time
from collections.abc import AsyncIterator

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cluster.ingress import free_port
from rthub.errors import Unauthorized
from serve.auth import TokenVerifier, issue_token

SECRET = "k" * 40


def claims(**extra) -> dict:
    """Valid for an hour: the parametrized tokens are made when the module is collected,
    and the suite may reach them minutes later."""
    return {"sub": "alice", "exp": int(time.time()) + 3600, **extra}


@pytest.fixture
def jwks(tmp_path):
    """Private keys and a JWKS file holding their public halves."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    keys = []
    for kid, algo, key in (("r1", RSAAlgorithm, rsa_key), ("e1", ECAlgorithm, ec_key)):
        jwk = json.loads(algo.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}))
    return str(path), rsa_key, ec_key


def test_hs256_tokens_carry_user_tenant_scopes_and_name():
    token = issue_token(SECRET, "alice", "acme", "notify:send admin", name="Alice")
    identity = TokenVerifier(SECRET).verify(token)
    assert (identity.user, identity.tenant, identity.name) == ("alice", "acme", "Alice")
    assert identity.scopes == {"notify:send", "admin"}


@pytest.mark.parametrize(("algorithm", "kid"), [("RS256", "r1"), ("ES256", "e1")])
def test_asymmetric_tokens_verify_against_the_jwks_file(jwks, algorithm, kid):
    path, rsa_key, ec_key = jwks
    key = rsa_key if algorithm == "RS256" else ec_key
    token = jwt.encode(claims(tenant="acme"), key, algorithm=algorithm, headers={"kid": kid})
    identity = TokenVerifier(None, jwks=path).verify(token)
    assert identity.user == "alice"
    assert identity.tenant == "acme"


def test_a_kid_missing_from_the_jwks_is_refused(jwks):
    path, rsa_key, _ = jwks
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rotated-away"})
    with pytest.raises(Unauthorized, match="no key with kid 'rotated-away' in the JWKS"):
        TokenVerifier(None, jwks=path).verify(token)


def test_an_hs256_token_is_not_accepted_by_a_jwks_only_hub(jwks):
    path, _, _ = jwks
    with pytest.raises(Unauthorized, match="token algorithm 'HS256' is not accepted"):
        TokenVerifier(None, jwks=path).verify(issue_token(SECRET, "alice"))


@pytest.mark.parametrize(("token", "message"), [
    (jwt.encode(claims(aud="other"), SECRET, algorithm="HS256"), "token audience is not 'rthub'"),
    (jwt.encode(claims(), SECRET, algorithm="HS256"), "token lacks the required 'aud' claim"),
    (jwt.encode(claims(aud="rthub", exp=int(time.time()) - 60), SECRET, algorithm="HS256"),
     "token has expired"),
    (jwt.encode(claims(aud="rthub"), "z" * 40, algorithm="HS256"),
     "token signature does not verify"),
    (jwt.encode(claims(aud="rthub"), None, algorithm="none"),
     "token algorithm 'none' is not accepted"),
    ("a.b", "token is not a well-formed JWT"),
    (jwt.encode(claims(aud="rthub", sub=""), SECRET, algorithm="HS256"),
     "token 'sub' and 'tenant' must be non-empty strings"),
])
def test_each_refusal_says_why(token, message):
    with pytest.raises(Unauthorized) as refused:
        TokenVerifier(SECRET, audience="rthub").verify(token)
    assert refused.value.message == message


@pytest.mark.parametrize(("extra", "message"), [
    ({"iss": "https://elsewhere"}, "token issuer is not 'https://id.example'"),
    ({}, "token lacks the required 'iss' claim"),
])
def test_the_issuer_is_checked_when_configured(extra, message):
    verifier = TokenVerifier(SECRET, issuer="https://id.example")
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(jwt.encode(claims(**extra), SECRET, algorithm="HS256"))
    assert refused.value.message == message
    token = jwt.encode(claims(iss="https://id.example"), SECRET, algorithm="HS256")
    assert verifier.verify(token).user == "alice"


class Issuer:
    """An identity provider's JWKS endpoint on a local port, whose keys can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.down = False
        self.fetches = 0

    def rotate_to(self, kid: str, keep: tuple[str, ...] = ()) -> rsa.RSAPrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = {**{k: self.keys[k] for k in keep}, kid: key}
        return key

    def token(self, kid: str) -> str:
        return jwt.encode(claims(), self.keys[kid], algorithm="RS256", headers={"kid": kid})

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        if self.down:
            return web.Response(status=503, text="maintenance")
        return web.json_response({"keys": [
            {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid}
            for kid, key in self.keys.items()]})


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[Issuer, str]]:
    provider = Issuer()
    provider.rotate_to("k1")
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", provider.jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield provider, f"http://127.0.0.1:{port}/.well-known/jwks.json"
    await runner.cleanup()


async def test_a_rotated_jwks_is_fetched_again_and_old_keys_stop_working(issuer):
    provider, url = issuer
    verifier = await asyncio.to_thread(TokenVerifier, None, url, refresh_s=60)
    assert verifier.verify(provider.token("k1")).user == "alice"
    # the issuer rotates: k2 signs, k1 is withdrawn
    provider.rotate_to("k2")
    with pytest.raises(Unauthorized, match="no key with kid 'k2' in the JWKS yet: the hub is "
                                           "fetching it again, retry shortly"):
        verifier.verify(provider.token("k2"))
    assert verifier.keys is not None
    assert verifier.keys.due()  # the next tick fetches
    await verifier.keys.refresh()
    assert verifier.verify(provider.token("k2")).user == "alice"
    with pytest.raises(Unauthorized, match="no key with kid 'k1' in the JWKS"):
        verifier.verify(jwt.encode(claims(), rsa.generate_private_key(
            public_exponent=65537, key_size=2048), algorithm="RS256", headers={"kid": "k1"}))
    # an unknown kid right after a fetch does not fetch again (no amplification)
    assert not verifier.keys.due()
    # the issuer is down at the next scheduled fetch: the keys already known keep working
    provider.down = True
    await verifier.keys.refresh()
    assert verifier.keys.failures == 1
    assert verifier.verify(provider.token("k2")).user == "alice"


@pytest.mark.parametrize("tenant", ["a/b", "a{b}", "with space", "x" * 129, "tab\there"])
def test_a_tenant_name_that_would_alias_keys_is_refused(tenant):
    with pytest.raises(Unauthorized, match="token 'tenant' must be 1 to 128 printable"):
        TokenVerifier(SECRET).verify(issue_token(SECRET, "alice", tenant=tenant))
    assert TokenVerifier(SECRET).verify(issue_token(SECRET, "alice", tenant="acme:eu-1.x"))
