"""Token checks made before the upgrade: HS256, RS256/ES256 from a JWKS, audience, claims."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

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
