"""Machine-to-machine clients and a resource server, with mainstream,
unmodified libraries, against Gatehouse:

- requests-oauthlib's BackendApplicationClient: the client credentials
  grant (RFC 6749 §4.4), credentials in HTTP Basic;
- Authlib's OAuth2Session: the same grant with client_secret_post, then
  token introspection (RFC 7662) as a resource server does it, checked by
  Authlib's own IntrospectTokenValidator, before and after a logout.

GATEHOUSE_CLIENT_CREATE is the `gatehouse client create` command (with its
--data-dir) that registers the clients.
"""

import json
import os
import shlex
import subprocess
import uuid

import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7662 import IntrospectTokenValidator
from oauthlib.oauth2 import BackendApplicationClient
from requests_oauthlib import OAuth2Session

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

BASE = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8080")
TOKEN_URL = f"{BASE}/oauth/token"
INTROSPECT_URL = f"{BASE}/oauth/introspect"


def create_client(name: str, *flags: str) -> dict:
    command = shlex.split(os.environ["GATEHOUSE_CLIENT_CREATE"]) + ["--name", name, *flags]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    suffix = uuid.uuid4().hex[:8]
    worker = create_client(f"worker {suffix}", "--confidential", "--grant-type", "client_credentials",
                           "--scope", "profile")
    resource_server = create_client(f"resource server {suffix}", "--confidential")

    # requests-oauthlib: client credentials in HTTP Basic.
    oauthlib_session = OAuth2Session(client=BackendApplicationClient(client_id=worker["client_id"]))
    token = oauthlib_session.fetch_token(token_url=TOKEN_URL, client_id=worker["client_id"],
                                         client_secret=worker["client_secret"])
    assert token["token_type"] == "Bearer", token
    assert "refresh_token" not in token, token
    assert token["scope"] == [] or token["scope"] == "" or token["scope"] == [""], token

    # Authlib: client_secret_post, and a scope.
    authlib_session = AuthlibSession(worker["client_id"], worker["client_secret"],
                                     token_endpoint_auth_method="client_secret_post", scope="profile")
    token = authlib_session.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert token["scope"] == "profile", token
    assert "refresh_token" not in token, token

    # A resource server introspects, with Authlib's own validator.
    introspector = AuthlibSession(resource_server["client_id"], resource_server["client_secret"])

    class Validator(IntrospectTokenValidator):
        def introspect_token(self, token_string):
            response = introspector.introspect_token(INTROSPECT_URL, token=token_string)
            response.raise_for_status()
            return response.json()

    validator = Validator()
    found = validator.authenticate_token(token["access_token"])
    validator.validate_token(found, ["profile"], None)
    assert found["active"] is True and found["client_id"] == worker["client_id"], found

    # A user's token, live, then logged out: inactive at once.
    username = f"authlib_{suffix}"
    password = "correct horse battery staple"
    assert requests.post(f"{BASE}/users", json={"username": username, "password": password},
                         timeout=10).status_code == 201
    user = requests.post(TOKEN_URL, data={"grant_type": "password", "username": username,
                                          "password": password}, timeout=10).json()
    found = validator.authenticate_token(user["access_token"])
    validator.validate_token(found, ["profile"], None)
    assert found["username"] == username, found
    assert requests.post(f"{BASE}/auth/logout", json={"refresh_token": user["refresh_token"]},
                         timeout=10).status_code == 204
    found = validator.authenticate_token(user["access_token"])
    assert found == {"active": False}, found
    try:
        validator.validate_token(found, ["profile"], None)
        raise AssertionError("a revoked token validated")
    except InvalidTokenError:
        pass
    print(f"requests-oauthlib and Authlib: client credentials → introspection → revoked: ok ({suffix})")


if __name__ == "__main__":
    main()
