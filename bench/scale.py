"""Fills a Gatehouse database with sessions for bench/scale.sh, and mints
tokens for some of the live ones.

    scale.py --base URL --db URL --key PEM --sessions N --active A \
             --tokens K --access-out FILE --refresh-out FILE

Writes straight to the database Gatehouse runs on (sqlite:///path or
mysql://user@host:port/db): N sessions of the bench users (bench001...,
registered through the API beforehand), of which the first A are live and
the rest revoked or expired (half each), each with one refresh token (the
store keeps only its SHA-256). Then picks K live sessions spread evenly
across all A and writes, for each, an access token signed with the
server's own key (--signing-key-file PEM; kid, issuer and audience read
from the server's metadata) and the session's refresh token, in shuffled
order. Needs PyMySQL, PyJWT and cryptography (../shared/bench/setup.sh's
venv has them).
"""

import argparse
import hashlib
import json
import random
import secrets
import sqlite3
import time
import urllib.parse
import urllib.request
import uuid

import jwt
import pymysql

BATCH = 5_000


def connect(url):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "sqlite":
        conn = sqlite3.connect(parsed.path or parsed.netloc)
        return conn, "?"
    conn = pymysql.connect(
        host=parsed.hostname,
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.path.lstrip("/"),
        autocommit=False,
    )
    return conn, "%s"


def fetch_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--sessions", type=int, required=True)
    p.add_argument("--active", type=int, required=True)
    p.add_argument("--tokens", type=int, required=True)
    p.add_argument("--access-out", required=True)
    p.add_argument("--refresh-out", required=True)
    a = p.parse_args()
    assert 0 < a.tokens <= a.active <= a.sessions

    metadata = fetch_json(a.base + "/.well-known/oauth-authorization-server")
    (jwk,) = fetch_json(a.base + "/.well-known/jwks.json")["keys"]
    with open(a.key, "rb") as f:
        key = f.read()

    conn, mark = connect(a.db)
    cur = conn.cursor()
    cur.execute("SELECT id FROM users WHERE username LIKE 'bench%' ORDER BY username")
    users = [row[0] for row in cur.fetchall()]
    assert users, "register the bench users first"

    now = int(time.time() * 1000)
    day = 86_400_000
    step = max(1, a.active // a.tokens)
    picked = set(range(0, a.active, step)[: a.tokens])
    chosen = []  # (session id, user id, refresh token) of the picked ones
    sessions, tokens = [], []
    insert_session = (
        "INSERT INTO sessions (id, user_id, client_id, scope, user_agent, ip, created_at, "
        f"last_used_at, expires_at, revoked_at) VALUES ({', '.join([mark] * 10)})"
    )
    insert_token = (
        "INSERT INTO refresh_tokens (token_hash, session_id, created_at, rotated_at) "
        f"VALUES ({', '.join([mark] * 4)})"
    )

    started = time.monotonic()
    for i in range(a.sessions):
        session_id = str(uuid.uuid4())
        user_id = users[i % len(users)]
        live = i < a.active
        expires_at = now + 30 * day if live or i % 2 else now - day
        revoked_at = None if live or not i % 2 else now - day
        sessions.append(
            (session_id, user_id, "gatehouse", "profile", "scale.py", "127.0.0.1",
             now - day, now, expires_at, revoked_at)
        )
        refresh = secrets.token_urlsafe(32)
        tokens.append((hashlib.sha256(refresh.encode()).hexdigest(), session_id, now, None))
        if i in picked:
            chosen.append((session_id, user_id, refresh))
    # In key order, so that each table grows at its end instead of
    # splitting pages all over a B-tree larger than the buffer pool.
    sessions.sort()
    tokens.sort()
    if mark == "%s":
        # Every row refers to a row written here: skip the per-row checks.
        cur.execute("SET foreign_key_checks = 0, unique_checks = 0")
    for rows, insert in ((sessions, insert_session), (tokens, insert_token)):
        for start in range(0, len(rows), BATCH):
            cur.executemany(insert, rows[start:start + BATCH])
            conn.commit()
    if mark == "?":
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    seeded = time.monotonic() - started

    now_s = now // 1000
    access = []
    for session_id, user_id, _ in chosen:
        claims = {
            "iss": metadata["issuer"], "aud": "gatehouse", "sub": user_id,
            "iat": now_s, "nbf": now_s, "exp": now_s + 900, "jti": str(uuid.uuid4()),
            "sid": session_id, "scope": "profile", "client_id": "gatehouse",
            "auth_time": now_s - 86_400, "amr": ["pwd"],
        }
        access.append(jwt.encode(claims, key, algorithm="EdDSA",
                                 headers={"typ": "at+jwt", "kid": jwk["kid"]}))
    order = list(range(len(chosen)))
    random.shuffle(order)
    with open(a.access_out, "w") as f:
        f.write("\n".join(access[i] for i in order) + "\n")
    with open(a.refresh_out, "w") as f:
        f.write("\n".join(chosen[i][2] for i in order) + "\n")
    print(f"seeded {a.sessions} sessions ({a.active} live) in {seeded:.1f} s; "
          f"{len(chosen)} token pairs written")


if __name__ == "__main__":
    main()
