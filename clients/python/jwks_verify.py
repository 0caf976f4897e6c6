"""A third party verifies a Gatehouse access token from the JWKS alone.

It discovers the JWKS through the RFC 8414 metadata, picks the key by `kid`
with PyJWT's PyJWKClient, and pins the algorithm, issuer and audience, as an
integrator's resource server would. It also checks that forgeries fail.
"""

import os
import sys
import uuid

import jwt
import requests

BASE = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8080")


def main() -> None:
    username = f"pyjwt_{uuid.uuid4().hex[:12]}"
    password = "correct horse battery staple"
    assert requests.post(f"{BASE}/users", json={"username": username, "password": password}, timeout=10).ok
    tokens = requests.post(
        f"{BASE}/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
        timeout=10,
    ).json()
    access_token = tokens["access_token"]

    metadata = requests.get(f"{BASE}/.well-known/oauth-authorization-server", timeout=10).json()
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(access_token)
    claims = jwt.decode(
        access_token,
        signing_key.key,
        algorithms=["EdDSA"],
        audience="gatehouse",
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
    )
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    assert claims["scope"] == "profile" and claims["sid"], claims

    # A token altered after signing does not verify.
    header, payload, signature = access_token.split(".")
    tampered = ".".join([header, payload, signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")])
    try:
        jwt.decode(tampered, signing_key.key, algorithms=["EdDSA"], audience="gatehouse", issuer=metadata["issuer"])
    except jwt.InvalidSignatureError:
        pass
    else:
        raise AssertionError("a tampered token must not verify")

    print(f"pyjwt: token verified from the JWKS alone (kid {signing_key.key_id}): ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"JWKS verification failed: {failure}", file=sys.stderr)
        sys.exit(1)
