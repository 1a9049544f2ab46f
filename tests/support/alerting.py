"""Where operator alerts go in a test: a real SMTP server's mailbox and a webhook receiver checking signatures.

A test module imports the `smtp` and `hook` fixtures and points its `settings` at them with `alerts_to`.
"""

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.support.callback_receiver import Receiver
from tests.support.smtp import Mailbox, mailbox

from kaquan.channels.callbacks.signing import new_secret
from kaquan.kit.config import Settings

PATH = "/alerts"


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    with mailbox() as box:
        yield box


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    receiver = Receiver(secrets={PATH: new_secret()})
    await receiver.start()
    yield receiver
    await receiver.stop()


def alerts_to(settings: Settings, smtp: Mailbox, hook: Receiver, *, operators: str) -> Settings:
    """`settings` with alerts mailed to `operators` and posted, signed, to `hook`."""
    smtp.point(settings)
    settings.alert_email = operators
    settings.alert_webhook_url = hook.url(PATH)
    settings.alert_webhook_secret = hook.secrets[PATH]
    settings.alert_webhook_allow_private = True
    return settings
