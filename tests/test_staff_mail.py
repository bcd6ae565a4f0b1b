"""Forwarding by e-mail against a real SMTP server (aiosmtpd) on 127.0.0.1: what arrives, over
STARTTLS with a certificate made here, and failures that say what went wrong but never the
password."""

import asyncio
import datetime
import email
import email.policy
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mitreden.staff.mail import MailError, Smtp, message, send

PASSWORD = "correct horse battery staple"
SUBJECT = "Zusammenfassung: Mobilität (7)"
BODY = "# Mobilität\n\nGrößere Übergänge, mehr Grün.\n\n> نريد المزيد من الأشجار\n"
ATTACHMENTS = {
    "zusammenfassung-mobilitaet-7.md": ("text/markdown", BODY.encode("utf-8")),
    "zusammenfassung-mobilitaet-7.pdf": ("application/pdf", b"%PDF-1.7\n\x00\xff binary"),
    "zusammenfassung-mobilitaet-7.csv": ("text/csv", "Title\r\n'=Straße\r\n".encode()),
}


class Inbox:
    """An aiosmtpd handler that keeps what it is sent."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 OK"

    def only(self) -> EmailMessage:
        (envelope,) = self.envelopes
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


def _authenticator(
    server: SMTP, session: Any, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    good = isinstance(data, LoginPassword) and data == (b"mitreden", PASSWORD.encode())
    return AuthResult(success=good, handled=False)


@asynccontextmanager
async def _server(inbox: Inbox, **options: Any) -> AsyncIterator[int]:
    """aiosmtpd listening on 127.0.0.1 on a free port, which it yields."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="localhost", **options), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def _smtp(port: int, **changes: Any) -> Smtp:
    base = Smtp(
        host="127.0.0.1",
        port=port,
        user="",
        password="",
        starttls=False,
        sender="mitreden@example.org",
        recipients=("strategie@example.org", "lead@example.org"),
        timeout=10,
    )
    return replace(base, **changes)


async def _send(smtp: Smtp, subject: str = SUBJECT) -> None:
    # smtplib blocks: off the loop that runs the server.
    await asyncio.to_thread(send, smtp, subject, BODY, ATTACHMENTS)


def _certificate(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A self-signed certificate for 127.0.0.1: the server's context, and the file a client
    trusts it by (a private CA in miniature)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mitreden test mail")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)


async def test_the_mail_arrives_with_subject_body_and_attachments() -> None:
    inbox = Inbox()
    async with _server(inbox) as port:
        await _send(_smtp(port))
    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "mitreden@example.org"
    assert envelope.rcpt_tos == ["strategie@example.org", "lead@example.org"]
    mail = inbox.only()
    assert mail["Subject"] == SUBJECT
    assert mail["From"] == "mitreden@example.org"
    assert mail["Message-ID"].endswith("@example.org>") and mail["Date"]
    body = mail.get_body(("plain",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == BODY
    assert body.get_content_charset() == "utf-8"
    attached = {part.get_filename(): part for part in mail.iter_attachments()}
    assert list(attached) == list(ATTACHMENTS)
    for name, (mimetype, content) in ATTACHMENTS.items():
        assert attached[name].get_content_type() == mimetype
        assert attached[name].get_payload(decode=True) == content


async def test_starttls_with_a_private_ca_and_login(tmp_path: Path) -> None:
    context, cafile = _certificate(tmp_path)
    inbox = Inbox()
    options = {"tls_context": context, "require_starttls": True, "authenticator": _authenticator}
    async with _server(inbox, **options) as port:
        smtp = _smtp(port, starttls=True, cafile=cafile, user="mitreden", password=PASSWORD)
        await _send(smtp)
        # Without trusting that certificate the system's CAs refuse it: nothing is sent.
        with pytest.raises(MailError, match=r"failed starting TLS: .*CERTIFICATE_VERIFY_FAILED"):
            await _send(replace(smtp, cafile=None))
        # Plain text to a server that requires STARTTLS is refused.
        with pytest.raises(MailError, match="failed sending: 530"):
            await _send(_smtp(port))
    assert inbox.only()["Subject"] == SUBJECT


async def test_a_refused_login_is_an_error_without_the_password() -> None:
    inbox = Inbox()
    options = {"authenticator": _authenticator, "auth_require_tls": False}
    async with _server(inbox, **options) as port:
        wrong = "hunter2-" + PASSWORD
        with pytest.raises(MailError) as refused:
            await _send(_smtp(port, user="mitreden", password=wrong))
        # Loopback: logging in without TLS is allowed; with the right password it works.
        await _send(_smtp(port, user="mitreden", password=PASSWORD))
    text = str(refused.value)
    assert text.startswith(f"mail via 127.0.0.1:{port} failed logging in: 535")
    assert "\n" not in text and wrong not in text and "hunter2" not in text
    assert wrong not in repr(_smtp(port, password=wrong))
    assert len(inbox.envelopes) == 1


def test_no_password_crosses_the_network_unencrypted() -> None:
    # Refused before any connection is made: the host is never looked up.
    smtp = _smtp(25, host="mail.example.org", user="mitreden", password=PASSWORD)
    with pytest.raises(MailError, match="without STARTTLS") as refused:
        send(smtp, SUBJECT, BODY, ATTACHMENTS)
    assert PASSWORD not in str(refused.value)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_server_is_one_clear_line() -> None:
    port = _free_port()
    with pytest.raises(MailError) as refused:
        send(_smtp(port, user="mitreden", password=PASSWORD), SUBJECT, BODY, ATTACHMENTS)
    text = str(refused.value)
    assert text.startswith(f"mail via 127.0.0.1:{port} failed connecting: ")
    assert "refused" in text.lower() and "\n" not in text and PASSWORD not in text


HEADER_INJECTIONS: list[tuple[str, Callable[[Smtp], tuple[Smtp, str, dict]]]] = [
    ("subject", lambda s: (s, "Hallo\r\nBcc: victim@example.org", ATTACHMENTS)),
    ("subject lf", lambda s: (s, "Hallo\nBcc: victim@example.org", ATTACHMENTS)),
    ("subject ls", lambda s: (s, "Hallo\u2028Bcc: victim@example.org", ATTACHMENTS)),
    ("sender", lambda s: (replace(s, sender="a@example.org\r\nBcc: v@example.org"), "x", {})),
    (
        "recipient",
        lambda s: (replace(s, recipients=("a@example.org\nBcc: v@example.org",)), "x", {}),
    ),
    ("display name", lambda s: (replace(s, recipients=("Eve <e@example.org>",)), "x", {})),
    ("two in one", lambda s: (replace(s, recipients=("a@example.org, b@example.org",)), "x", {})),
    ("no recipient", lambda s: (replace(s, recipients=()), "x", {})),
    ("file name", lambda s: (s, "x", {"a.md\r\nBcc: v@example.org": ("text/plain", b"")})),
    ("mimetype", lambda s: (s, "x", {"a.md": ("text/plain\r\nBcc: v@example.org", b"")})),
]


@pytest.mark.parametrize(
    "attempt", [pytest.param(case, id=name) for name, case in HEADER_INJECTIONS]
)
async def test_header_injection_is_refused(
    attempt: Callable[[Smtp], tuple[Smtp, str, dict]],
) -> None:
    inbox = Inbox()
    async with _server(inbox) as port:
        smtp, subject, attachments = attempt(_smtp(port))
        with pytest.raises(MailError):
            message(smtp, subject, BODY, attachments)
        with pytest.raises(MailError):
            await asyncio.to_thread(send, smtp, subject, BODY, attachments)
    assert inbox.envelopes == []
