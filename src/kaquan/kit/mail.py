"""Sending one e-mail through the configured SMTP server (`KAQUAN_SMTP_*`), from a worker thread.

Shared by the buyers' one-time codes and the buyers' notifications. A message may
carry a fixed `Message-ID`: the same notice sent twice after a crash (sent, then
the transaction that records it lost) then reaches the mailbox as one message id.
"""

import asyncio
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from kaquan.kit.config import Settings

SEND_TIMEOUT_S = 10.0


class MailNotConfigured(LookupError):
    """KAQUAN_SMTP_HOST is not set: what waits to be mailed waits for it."""


def message(settings: Settings, to: str, subject: str, text: str, *, message_id: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = settings.smtp_from
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = message_id or make_msgid(domain="kaquan.local")
    mail.set_content(text)
    return mail


def _send(settings: Settings, mail: EmailMessage) -> None:
    if not settings.smtp_host:
        raise MailNotConfigured("KAQUAN_SMTP_HOST is not set")
    smtp_class = smtplib.SMTP_SSL if settings.smtp_tls == "ssl" else smtplib.SMTP
    with smtp_class(settings.smtp_host, settings.smtp_port, timeout=SEND_TIMEOUT_S) as smtp:
        if settings.smtp_tls == "starttls":
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(mail)


async def send(settings: Settings, mail: EmailMessage) -> None:
    """Hand `mail` to the SMTP server; raises (OSError, smtplib.SMTPException) when it cannot: retry later."""
    await asyncio.to_thread(_send, settings, mail)
