"""Operations tests: where operator alerts go (`tests.support.alerting`)."""

from tests.support.alerting import hook, smtp

__all__ = ["hook", "smtp"]
