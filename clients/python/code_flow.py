"""A third-party web app with Authlib's OAuth2Session: the authorization
code flow with PKCE (S256) against Gatehouse, the user's part played as a
browser does it (a cookie jar and form posts on Gatehouse's sign-in and
consent pages), then the code redeemed by a confidential client
(client_secret_basic) and the refresh token rotated.

GATEHOUSE_CLIENT_CREATE is the `gatehouse client create` command (with its
--data-dir) that registers the app.
"""

import html
import json
import os
import re
import shlex
import subprocess
import uuid
from urllib.parse import parse_qs, urljoin, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

BASE = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8080")
REDIRECT_URI = "http://127.0.0.1:8765/callback"
PASSWORD = "correct horse battery staple"


def create_client(name: str, *flags: str) -> dict:
    command = shlex.split(os.environ["GATEHOUSE_CLIENT_CREATE"]) + ["--name", name, *flags]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def hidden_fields(page: str) -> dict:
    return {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def sign_in(url: str, username: str) -> str:
    """The browser's part: the sign-in form, then (once) Allow; the URL it is sent back to."""
    browser = requests.Session()
    page = browser.get(url, allow_redirects=False)
    assert page.status_code == 200, page.text
    form = hidden_fields(page.text) | {"username": username, "password": PASSWORD}
    action = urljoin(BASE, "/oauth/authorize")
    page = browser.post(action, data=form, allow_redirects=False)
    if page.status_code == 200:  # the consent page, the first time
        assert 'value="allow"' in page.text, page.text
        page = browser.post(action, data=hidden_fields(page.text) | {"decision": "allow"},
                            allow_redirects=False)
    assert page.status_code == 302, page.text
    return page.headers["Location"]


def main() -> None:
    suffix = uuid.uuid4().hex[:8]
    app = create_client(f"web app {suffix}", "--confidential", "--grant-type", "authorization_code",
                        "--grant-type", "refresh_token", "--scope", "profile",
                        "--redirect-uri", "http://127.0.0.1/callback")
    username = f"authlib_{suffix}"
    registered = requests.post(f"{BASE}/users", json={"username": username, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    metadata = requests.get(f"{BASE}/.well-known/oauth-authorization-server").json()

    session = OAuth2Session(app["client_id"], app["client_secret"], scope="profile",
                            redirect_uri=REDIRECT_URI, code_challenge_method="S256")
    verifier = generate_token(48)
    url, state = session.create_authorization_url(metadata["authorization_endpoint"],
                                                  code_verifier=verifier)
    assert "code_challenge=" in url and "code_challenge_method=S256" in url, url
    back = sign_in(url, username)
    answer = parse_qs(urlparse(back).query)
    assert answer["state"] == [state], answer
    assert answer["iss"] == [metadata["issuer"]], answer

    token = session.fetch_token(metadata["token_endpoint"], authorization_response=back,
                                code_verifier=verifier)
    assert token["token_type"] == "Bearer", token
    assert token["scope"] == "profile", token
    me = session.get(f"{BASE}/users/me")
    assert me.status_code == 200 and me.json()["username"] == username, me.text

    refreshed = session.refresh_token(metadata["token_endpoint"])
    assert refreshed["refresh_token"] != token["refresh_token"], refreshed

    # Without the verifier, or with another one, a fresh code is refused.
    url, state = session.create_authorization_url(metadata["authorization_endpoint"],
                                                  code_verifier=generate_token(48))
    back = sign_in(url, username)
    try:
        session.fetch_token(metadata["token_endpoint"], authorization_response=back,
                            code_verifier=generate_token(48))
    except Exception as error:  # Authlib raises OAuthError with the server's error code
        assert "invalid_grant" in str(error), error
    else:
        raise AssertionError("a code redeemed with another verifier was accepted")
    print(f"authlib: authorization code + PKCE → tokens → GET /users/me → refresh; "
          f"a wrong verifier refused: ok ({username})")


if __name__ == "__main__":
    main()
