"""A third party verifies a Gatehouse access token from the JWKS alone.

It discovers the JWKS through the RFC 8414 metadata, picks the key by `kid`
with PyJWT's PyJWKClient, and pins the algorithm, issuer and audience, as an
integrator's resource server would. It also checks that forgeries fail.
"""

import os
import shlex
import subprocess
import sys
import time
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
    # One client for the whole run: it caches the JWKS, as a resource server
    # would, here for 2 s (PyJWT's default is 300 s, Gatehouse's max-age).
    jwks_client = jwt.PyJWKClient(metadata["jwks_uri"], lifespan=2)
    signing_key = jwks_client.get_signing_key_from_jwt(access_token)
    claims = verify(access_token, signing_key, metadata)
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"
    assert claims["scope"] == "profile" and claims["sid"], claims

    # A token altered after signing does not verify.
    header, payload, signature = access_token.split(".")
    # Change a character in the middle: every one there carries six whole
    # bits, so the signature still decodes, and is wrong. (The last one has
    # spare bits that strict decoders refuse before checking anything.)
    flipped = "A" if signature[10] != "A" else "B"
    tampered = ".".join([header, payload, signature[:10] + flipped + signature[11:]])
    try:
        jwt.decode(tampered, signing_key.key, algorithms=["EdDSA"], audience="gatehouse", issuer=metadata["issuer"])
    except jwt.InvalidSignatureError:
        pass
    else:
        raise AssertionError("a tampered token must not verify")

    print(f"pyjwt: token verified from the JWKS alone (kid {signing_key.key_id}): ok")

    rotate = os.environ.get("GATEHOUSE_ROTATE_COMMAND")
    if rotate:
        check_rotation(rotate, jwks_client, metadata, username, password, access_token)


def verify(token: str, signing_key: jwt.PyJWK, metadata: dict) -> dict:
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["EdDSA"],
        audience="gatehouse",
        issuer=metadata["issuer"],
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub"]},
    )


def check_rotation(rotate: str, jwks_client, metadata, username, password, old_token) -> None:
    """`gatehouse keys rotate --activate-in` longer than the verifier's JWKS
    cache: the new key is published first, so when tokens start carrying it
    the caching client already has it; the old token keeps verifying."""
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    command = shlex.split(rotate) + ["--activate-in", "3s"]
    new_kid = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    assert new_kid and new_kid != old_kid, new_kid

    def login() -> str:
        return requests.post(
            f"{BASE}/oauth/token",
            data={"grant_type": "password", "username": username, "password": password},
            timeout=10,
        ).json()["access_token"]

    def jwks_kids() -> list:
        return [key["kid"] for key in requests.get(metadata["jwks_uri"], timeout=10).json()["keys"]]

    deadline = time.monotonic() + 30
    while jwks_kids() != [old_kid, new_kid]:
        assert time.monotonic() < deadline, "the new key was never published"
        time.sleep(0.2)
    while True:
        token = login()
        if jwt.get_unverified_header(token)["kid"] == new_kid:
            break
        assert time.monotonic() < deadline, "the server never signed with the rotated key"
        time.sleep(0.2)
    verify(token, jwks_client.get_signing_key_from_jwt(token), metadata)
    verify(old_token, jwks_client.get_signing_key_from_jwt(old_token), metadata)
    print(f"pyjwt: after keys rotate, new kid {new_kid} and old kid {old_kid} both verify: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"JWKS verification failed: {failure}", file=sys.stderr)
        sys.exit(1)
