"""A second factor as an integrator meets it, with PyOTP as the user's
authenticator app: the otpauth:// URI Gatehouse hands out is parsed by
PyOTP's own parser, its codes confirm the enrolment and finish logins.

- requests-oauthlib's password grant surfaces the 403 as its own typed
  error (`mfa_required`);
- Authlib's OAuth2Session finishes the login with the extension grant
  `urn:gatehouse:grant-type:mfa-otp` (RFC 6749 §4.5), and with a recovery code;
- a code is accepted once, and the tokens say how the user signed in (`amr`).
"""

import os
import time
import uuid

import jwt
import pyotp
import requests
from authlib.integrations.requests_client import OAuth2Session
from oauthlib.oauth2 import LegacyApplicationClient, OAuth2Error
from requests_oauthlib import OAuth2Session as OAuthlibSession

os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

BASE = os.environ.get("GATEHOUSE_URL", "http://127.0.0.1:8080")
TOKEN_URL = f"{BASE}/oauth/token"
PASSWORD = "correct horse battery staple"
MFA_OTP = "urn:gatehouse:grant-type:mfa-otp"
MFA_RECOVERY_CODE = "urn:gatehouse:grant-type:mfa-recovery-code"


def amr(token: dict) -> list:
    return jwt.decode(token["access_token"], options={"verify_signature": False})["amr"]


def password_step(username: str) -> str:
    """The password grant, as a plain form post: the mfa_token of its 403."""
    answer = requests.post(TOKEN_URL, data={"grant_type": "password", "username": username,
                                            "password": PASSWORD}, timeout=10)
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["error"] == "mfa_required" and answer.headers["Cache-Control"] == "no-store", body
    return body["mfa_token"]


def main() -> None:
    username = f"pyotp_{uuid.uuid4().hex[:12]}"
    created = requests.post(f"{BASE}/users", json={"username": username, "password": PASSWORD}, timeout=10)
    assert created.status_code == 201, created.text
    login = requests.post(f"{BASE}/auth/login", json={"username": username, "password": PASSWORD}, timeout=10)
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}

    started = requests.post(f"{BASE}/users/me/mfa/totp", json={"current_password": PASSWORD},
                            headers=bearer, timeout=10)
    assert started.status_code == 200, started.text
    enrolment = started.json()
    app = pyotp.parse_uri(enrolment["otpauth_uri"])
    assert isinstance(app, pyotp.TOTP) and app.secret == enrolment["secret"], enrolment
    assert app.issuer == "Gatehouse" and app.name == username, (app.issuer, app.name)
    assert app.digits == 6 and app.interval == 30 and app.digest().name == "sha1"
    assert enrolment["qr_svg"].lstrip().startswith("<?xml") and "<svg" in enrolment["qr_svg"]

    # The previous step's code (within the skew): this step's stays unused.
    confirmed = requests.post(f"{BASE}/users/me/mfa/totp/confirm", json={"code": app.at(time.time() - 30)},
                              headers=bearer, timeout=10)
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recovery_codes"]
    assert len(recovery_codes) == 10

    # requests-oauthlib: the 403 is the library's typed error.
    legacy = OAuthlibSession(client=LegacyApplicationClient(client_id="gatehouse"))
    try:
        legacy.fetch_token(token_url=TOKEN_URL, username=username, password=PASSWORD, client_id="gatehouse")
    except OAuth2Error as error:
        assert error.error == "mfa_required", error.error
    else:
        raise AssertionError("an account with a second factor must not get tokens for the password alone")

    # Authlib finishes the login with the extension grant.
    session = OAuth2Session(client_id="gatehouse", token_endpoint_auth_method="none")
    token = session.fetch_token(TOKEN_URL, grant_type=MFA_OTP, mfa_token=password_step(username), otp=app.now())
    assert amr(token) == ["pwd", "otp", "mfa"], amr(token)
    assert session.get(f"{BASE}/users/me", timeout=10).json()["mfa_enabled"] is True

    # The same code again: refused, whatever the mfa_token.
    replay = requests.post(TOKEN_URL, data={"grant_type": MFA_OTP, "mfa_token": password_step(username),
                                            "otp": app.now()}, timeout=10)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text

    recovered = OAuth2Session(client_id="gatehouse", token_endpoint_auth_method="none").fetch_token(
        TOKEN_URL, grant_type=MFA_RECOVERY_CODE, mfa_token=password_step(username),
        recovery_code=recovery_codes[0])
    assert amr(recovered) == ["pwd", "mfa"], amr(recovered)

    print(f"pyotp: otpauth URI parsed → confirmed → mfa_required → mfa-otp (Authlib) → replay refused "
          f"→ recovery code: ok ({username})")


if __name__ == "__main__":
    main()
