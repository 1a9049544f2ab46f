"""Who may open which console page: the same permissions as the admin API."""

from typing import Annotated

from kaquan.identity.permissions import Permission
from kaquan.web.deps import Principal, require

AuditRead = Annotated[Principal, require(Permission.AUDIT_READ)]
CatalogRead = Annotated[Principal, require(Permission.CATALOG_READ)]
ChannelsRead = Annotated[Principal, require(Permission.CHANNELS_READ)]
ChannelsWrite = Annotated[Principal, require(Permission.CHANNELS_WRITE)]
CatalogWrite = Annotated[Principal, require(Permission.CATALOG_WRITE)]
FinanceRead = Annotated[Principal, require(Permission.FINANCE_READ)]
CodesReveal = Annotated[Principal, require(Permission.CODES_REVEAL)]
LeaksTrace = Annotated[Principal, require(Permission.LEAKS_TRACE)]
OrdersRead = Annotated[Principal, require(Permission.ORDERS_READ)]
Redeemer = Annotated[Principal, require(Permission.REDEEM)]
StockRead = Annotated[Principal, require(Permission.STOCK_READ)]
StockWrite = Annotated[Principal, require(Permission.STOCK_WRITE)]
