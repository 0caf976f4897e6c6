"""The authorization code round trip beside the password grant, in one run:
GET /oauth/authorize (the sign-in page), POST the form (the password is
checked: Argon2id, as the password grant does), the 302 with the code, and
POST /oauth/token to redeem it; against one POST /oauth/token with
grant_type=password. Both are bounded by the password hash.

    python3 bench/authorize.py URL CLIENT_ID SECONDS THREADS

Prints requests per second of each and their ratio. Standard library only.
"""

import base64
import hashlib
import http.client
import re
import secrets
import sys
import threading
import time
import urllib.parse

URL, CLIENT_ID = sys.argv[1], sys.argv[2]
SECONDS, THREADS = float(sys.argv[3]), int(sys.argv[4])
HOST = urllib.parse.urlparse(URL)
PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1:9/callback"
FIELD = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def connection() -> http.client.HTTPConnection:
    return http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=30)


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    headers = [(name.lower(), value) for name, value in response.getheaders()]
    return response.status, headers, response.read().decode()


def register(username: str) -> None:
    conn = connection()
    status, _, text = request(conn, "POST", "/users",
                              f'{{"username":"{username}","password":"{PASSWORD}"}}',
                              {"Content-Type": "application/json"})
    assert status == 201, text


def password_grant(conn, username: str) -> None:
    body = urllib.parse.urlencode({"grant_type": "password", "username": username, "password": PASSWORD})
    status, _, text = request(conn, "POST", "/oauth/token", body,
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, text


def round_trip(conn, username: str) -> None:
    verifier = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI,
        "scope": "profile", "state": secrets.token_urlsafe(8), "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    status, headers, page = request(conn, "GET", f"/oauth/authorize?{query}")
    assert status == 200, page
    cookie = "; ".join(value.split(";")[0] for name, value in headers if name == "set-cookie")
    form = {name: value.replace("&#x2f;", "/").replace("&amp;", "&") for name, value in FIELD.findall(page)}
    form.update(username=username, password=PASSWORD)
    status, headers, page = request(conn, "POST", "/oauth/authorize", urllib.parse.urlencode(form),
                                    {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    assert status == 302, page
    location = next(value for name, value in headers if name == "location")
    code = urllib.parse.parse_qs(urllib.parse.urlparse(location).query)["code"][0]
    body = urllib.parse.urlencode({"grant_type": "authorization_code", "client_id": CLIENT_ID, "code": code,
                                   "redirect_uri": REDIRECT_URI, "code_verifier": verifier})
    status, _, text = request(conn, "POST", "/oauth/token", body,
                              {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 200, text


def run(flow) -> float:
    done = [0] * THREADS
    deadline = time.monotonic() + SECONDS

    def worker(index: int) -> None:
        conn = connection()
        username = f"bench_{index}"
        while time.monotonic() < deadline:
            flow(conn, username)
            done[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


for i in range(THREADS):
    register(f"bench_{i}")
password = run(password_grant)
code = run(round_trip)
print(f"password {password:8.1f}/s  authorization code round trip {code:8.1f}/s  ratio {code / password:.2f}")
