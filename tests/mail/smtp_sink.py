#!/usr/bin/env python3
"""A real SMTP server for Gatehouse's tests (aiosmtpd), recording each mail.

Each accepted mail becomes <dir>/<n>.json: the envelope, the subject, the
decoded text and HTML parts, the headers and the raw message. The server's
behaviour is read, per message, from <dir>/mode:

  ok            accept (the default)
  defer         answer 451 (a transient refusal)
  reject        answer 550 (a permanent refusal)
  slow SECONDS  write <dir>/inflight, wait that long, then accept

Options: --port, --dir, --tls starttls|implicit (a certificate for
localhost from a CA written to <dir>/ca.pem, made with trustme), --auth
USER:PASS (AUTH required). It prints "ready" once it listens.
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, directory):
        self.directory = directory
        self.count = len([n for n in os.listdir(directory) if n.endswith(".json")])

    def mode(self):
        try:
            with open(os.path.join(self.directory, "mode")) as f:
                return f.read().split()
        except FileNotFoundError:
            return ["ok"]

    async def handle_DATA(self, server, session, envelope):
        mode = self.mode()
        if mode[0] == "defer":
            return "451 4.3.0 try again later"
        if mode[0] == "reject":
            return "550 5.1.1 mailbox unavailable"
        if mode[0] == "slow":
            # Tells a test that a mail is being handed over now.
            open(os.path.join(self.directory, "inflight"), "w").close()
            await asyncio.sleep(float(mode[1]))
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        parts = {"text/plain": None, "text/html": None}
        for part in message.walk():
            if part.get_content_type() in parts and parts[part.get_content_type()] is None:
                parts[part.get_content_type()] = part.get_content()
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(message["subject"]),
            "from": str(message["from"]),
            "headers": {k.lower(): str(v) for k, v in message.items()},
            "text": parts["text/plain"],
            "html": parts["text/html"],
            "raw": envelope.content.decode("utf-8", "replace"),
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "authenticated": bool(session.authenticated),
        }
        path = os.path.join(self.directory, f"{self.count:05}.json")
        with open(path + ".part", "w") as f:
            json.dump(record, f)
        os.rename(path + ".part", path)
        return "250 2.0.0 OK"


def tls_context(directory):
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(os.path.join(directory, "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    return context


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls", choices=["starttls", "implicit"])
    parser.add_argument("--auth")
    args = parser.parse_args()
    recorder = Recorder(args.dir)
    context = tls_context(args.dir) if args.tls else None

    def authenticator(server, session, envelope, mechanism, data):
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = args.auth.split(":", 1)
        ok = data.login.decode() == user and data.password.decode() == password
        return AuthResult(success=ok)

    def factory():
        return SMTP(
            recorder,
            hostname="localhost",
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            auth_required=bool(args.auth),
            auth_require_tls=bool(args.tls),
            authenticator=authenticator if args.auth else None,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        host="127.0.0.1",
        port=args.port,
        ssl=context if args.tls == "implicit" else None,
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
