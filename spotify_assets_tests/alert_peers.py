"""Real peers for the alert tests, on loopback: an HTTP receiver (what a Logic App, Teams or Slack
webhook is to us) and an SMTP server with STARTTLS and login (aiosmtpd), with a self-signed
certificate the test makes the client trust through SSL_CERT_FILE."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from spotify_assets_tests.servers import free_port


@dataclass
class Receiver:
    """Records every POST; answers `failures` of them first with `failure_status`."""

    url: str
    requests: list[dict] = field(default_factory=list)
    failures: int = 0
    failure_status: int = 503
    answers: list[int] = field(default_factory=list)


@contextmanager
def http_receiver(path: str = "/hook") -> Iterator[Receiver]:
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != path:
                status = 404
            elif receiver.failures > 0:
                receiver.failures -= 1
                status = receiver.failure_status
            else:
                status = 202  # what a Logic App's HTTP trigger answers
                receiver.requests.append(json.loads(body))
            receiver.answers.append(status)
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Mailbox:
    port: int
    cert_file: Path
    messages: list[Message] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)  # tls, login of each delivered message


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def smtp_server(folder: Path, username: str, password: str) -> Iterator[Mailbox]:
    """SMTP on loopback that requires STARTTLS before anything else, and this login."""
    import ssl

    cert_file, key_file = self_signed_certificate(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    mailbox = Mailbox(port=free_port(), cert_file=cert_file)

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mailbox.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            mailbox.sessions.append(
                {"tls": session.ssl is not None, "login": session.auth_data.decode()}
            )
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == (username, password)
        return AuthResult(success=ok, auth_data=auth_data.login if ok else None)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=mailbox.port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
        # The readiness probe of Controller speaks plain SMTP: let it through.
        ready_timeout=10,
    )
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
