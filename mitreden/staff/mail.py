"""Forwarded summaries by e-mail, for strategy teams that work from their inbox.

Standard library only: one SMTP submission per summary, with STARTTLS where the server is not
on this machine. A failure is one line that names the server and the step that failed, and never
the password, because it ends up in the audit trail and on the moderator's screen.
"""

import ipaddress
import re
import smtplib
import ssl
import unicodedata
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

# A bare address, user@domain: no display name, and nothing that could end a header or add one.
ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+")
MIMETYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*")


class MailError(Exception):
    """Mail that was not sent, in one line fit for a log or a moderator's screen."""


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    user: str
    """Empty: send without logging in (a relay that trusts this machine)."""
    password: str = field(repr=False)
    starttls: bool
    sender: str
    recipients: tuple[str, ...]
    timeout: float = 30.0
    """Seconds for connecting and for each answer of the server."""
    cafile: str | None = None
    """A PEM file of certificates to trust instead of the system's, for a private CA."""


def message(
    smtp: Smtp, subject: str, body: str, attachments: dict[str, tuple[str, bytes]]
) -> EmailMessage:
    """The mail as sent: plain-text UTF-8 body, one attachment per file. Refuses a subject,
    address or file name that could smuggle in a header."""
    if not smtp.recipients:
        raise MailError("no recipients to send the mail to")
    for address in (smtp.sender, *smtp.recipients):
        if not ADDRESS.fullmatch(address):
            raise MailError(f"not a bare e-mail address (user@domain): {address!r}")
    _one_line("subject", subject)
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = smtp.sender
    mail["To"] = ", ".join(smtp.recipients)
    mail["Date"] = formatdate(usegmt=True)
    # The sender's domain, so no host name lookup is needed to make an id.
    mail["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2])
    # Quoted-printable keeps the body 7-bit, for servers that do not take 8-bit mail.
    mail.set_content(body, charset="utf-8", cte="quoted-printable")
    for name, (mimetype, content) in attachments.items():
        _one_line("attachment name", name)
        if not MIMETYPE.fullmatch(mimetype):
            raise MailError(f"not a mimetype: {mimetype!r}")
        maintype, _, subtype = mimetype.partition("/")
        mail.add_attachment(content, maintype=maintype, subtype=subtype, filename=name)
    return mail


def send(smtp: Smtp, subject: str, body: str, attachments: dict[str, tuple[str, bytes]]) -> None:
    """Send the mail to every recipient, or raise MailError. The password only ever travels
    encrypted, unless the server is on this machine."""
    mail = message(smtp, subject, body, attachments)
    if smtp.user and not smtp.starttls and not loopback(smtp.host):
        raise MailError(f"refusing to send the SMTP password to {smtp.host} without STARTTLS")
    step = "connecting"
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as client:
            if smtp.starttls:
                step = "starting TLS"
                client.starttls(context=ssl.create_default_context(cafile=smtp.cafile))
            if smtp.user:
                step = "logging in"
                client.login(smtp.user, smtp.password)
            step = "sending"
            refused = client.send_message(mail, smtp.sender, list(smtp.recipients))
    except (smtplib.SMTPException, OSError, UnicodeError) as err:
        reason = _reason(err)
        if smtp.password:
            reason = reason.replace(smtp.password, "(hidden)")
        raise MailError(f"mail via {smtp.host}:{smtp.port} failed {step}: {reason}") from None
    if refused:
        raise MailError(
            f"mail via {smtp.host}:{smtp.port}: the server refused "
            f"{len(refused)} of {len(smtp.recipients)} recipients"
        )


def loopback(host: str) -> bool:
    """Whether `host` is this machine, where a password needs no encryption on the way."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_line(what: str, text: str) -> None:
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text):
        raise MailError(f"the {what} has a line break or control character")


def _reason(err: Exception) -> str:
    """What the server or the network said, on one line; never the bytes that were sent."""
    if isinstance(err, smtplib.SMTPRecipientsRefused):
        text = "every recipient was refused"
    elif isinstance(err, smtplib.SMTPResponseException):
        answer = err.smtp_error
        if isinstance(answer, bytes):
            answer = answer.decode("utf-8", "replace")
        text = f"{err.smtp_code} {answer}"
    elif isinstance(err, UnicodeError):
        text = "the user name or password is not plain ASCII"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())
