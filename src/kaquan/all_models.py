"""Every module's tables on the one MetaData (for migrations and test fixtures)."""

from kaquan.audit import models as _audit  # noqa: F401
from kaquan.buyers import models as _buyers  # noqa: F401
from kaquan.catalog import models as _catalog  # noqa: F401
from kaquan.channels import models as _channels  # noqa: F401
from kaquan.channels.callbacks import models as _callbacks  # noqa: F401
from kaquan.flashsale import models as _flashsale  # noqa: F401
from kaquan.identity import models as _identity  # noqa: F401
from kaquan.inventory import models as _inventory  # noqa: F401
from kaquan.kit import alerts as _alerts  # noqa: F401
from kaquan.kit import keys as _keys  # noqa: F401
from kaquan.kit import outbox as _outbox  # noqa: F401
from kaquan.kit.models import Base
from kaquan.ledger import models as _ledger  # noqa: F401
from kaquan.notifications import models as _notifications  # noqa: F401
from kaquan.operations import models as _operations  # noqa: F401
from kaquan.orders import models as _orders  # noqa: F401
from kaquan.payments import models as _payments  # noqa: F401
from kaquan.reconciliation import models as _reconciliation  # noqa: F401
from kaquan.redemption import models as _redemption  # noqa: F401
from kaquan.risk import models as _risk  # noqa: F401
from kaquan.settlement import models as _settlement  # noqa: F401

metadata = Base.metadata
