"""A mainstream, unmodified OAuth2 client against Gatehouse's token endpoint.

requests-oauthlib's LegacyApplicationClient implements the resource-owner
password grant (RFC 6749 §4.3) and the refresh grant (§6) as integrators use
them: client credentials in an HTTP Basic header, tokens in a session that
signs requests with `Authorization: Bearer`.
"""

import os
import sys
import uuid

import requests
from oauthlib.oauth2 import InvalidGrantError, LegacyApplicationClient
from requests_oauthlib import OAuth2Session

# Plain HTTP on loopback in CI; oauthlib insists on HTTPS otherwise.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

BASE = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8080")
TOKEN_URL = f"{BASE}/oauth/token"
CLIENT_ID = "integrator-demo"


def main() -> None:
    username = f"oauthlib_{uuid.uuid4().hex[:12]}"
    password = "correct horse battery staple"
    created = requests.post(f"{BASE}/users", json={"username": username, "password": password}, timeout=10)
    assert created.status_code == 201, created.text

    session = OAuth2Session(client=LegacyApplicationClient(client_id=CLIENT_ID), scope=["profile"])
    token = session.fetch_token(
        token_url=TOKEN_URL, username=username, password=password, client_id=CLIENT_ID, client_secret=""
    )
    assert token["token_type"] == "Bearer", token
    assert token["scope"] == ["profile"], token
    assert token["expires_in"] > 0 and token["refresh_token"], token

    me = session.get(f"{BASE}/users/me", timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username

    refreshed = session.refresh_token(TOKEN_URL, client_id=CLIENT_ID, client_secret="")
    assert refreshed["refresh_token"] != token["refresh_token"], "the refresh token rotates"
    assert session.get(f"{BASE}/users/me", timeout=10).status_code == 200

    # Wrong credentials surface as the library's own typed error.
    stranger = OAuth2Session(client=LegacyApplicationClient(client_id=CLIENT_ID))
    try:
        stranger.fetch_token(token_url=TOKEN_URL, username=username, password="wrong password!", client_id=CLIENT_ID)
    except InvalidGrantError:
        pass
    else:
        raise AssertionError("a wrong password must raise InvalidGrantError")

    print(f"requests-oauthlib: password grant → me → refresh → invalid_grant: ok ({username})")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"requests-oauthlib check failed: {failure}", file=sys.stderr)
        sys.exit(1)
