"""Demo data: a few products with freshly generated codes, so the shop has something to sell."""

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import identity
from kaquan.catalog import service as catalog
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.channels import agents
from kaquan.channels import pricing as channels
from kaquan.identity.errors import UsernameTaken
from kaquan.identity.permissions import ROLES
from kaquan.inventory import importing, parse_code_file, segments
from kaquan.runtime import Runtime

ACTOR = "demo"
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _code(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


async def seed(rt: Runtime) -> bool:
    """Create the demo catalog and stock once; returns False when the shop already has products."""
    async with rt.db.transaction() as session:
        if await catalog.list_products(session):
            return False
        await _video_membership(rt, session)
        await _game_card(rt, session)
        await _gift_card_segment(rt, session)
    return True


@dataclass(frozen=True)
class AgentCredentials:
    agent: str
    key_id: str
    secret: str


DEMO_AGENT = "demo-agent"
# Agents buy the code SKUs through the open API at a wholesale price (minor units).
AGENT_PRICES = {"VIDEO-1M": 1800, "GAME-100": 880}


async def create_demo_agent(rt: Runtime) -> AgentCredentials | None:
    """A demo agent with ¥1,000 on deposit, the code SKUs on its price list and one API key; None if it exists."""
    async with rt.db.transaction() as session:
        if any(agent.code == DEMO_AGENT for agent in await agents.list_agents(session)):
            return None
        for sku, price in AGENT_PRICES.items():
            await channels.set_price(rt.db, session, "api", sku, price, actor=ACTOR)
        agent = await agents.create_agent(
            rt.db, session, code=DEMO_AGENT, name="Demo agent 演示代理商", currency="CNY", actor=ACTOR
        )
        await agents.top_up(rt.db, session, agent.id, 100_000, reference="demo-opening-deposit", actor=ACTOR)
        key = await agents.issue_key(rt.db, session, rt.keyring, agent.id, ip_allowlist=[], actor=ACTOR)
    return AgentCredentials(DEMO_AGENT, key.key_id, key.secret)


@dataclass(frozen=True)
class OwnerCredentials:
    username: str
    password: str
    api_token: str


async def create_owner(rt: Runtime) -> OwnerCredentials | None:
    """The first owner, `owner`, with a generated password and an API token; None once any admin exists."""
    password = secrets.token_urlsafe(18)
    try:
        async with rt.db.transaction() as session:
            if await identity.user_count(session):
                return None
            user = await identity.create_user(session, "owner", password, "owner", actor=ACTOR)
            _, token = await identity.create_token(
                session,
                user.id,
                "demo",
                sorted(ROLES["owner"]),
                expires_in_days=90,
                allowed=ROLES["owner"],
                actor=ACTOR,
            )
    except UsernameTaken:  # a concurrent demo run made it first
        return None
    return OwnerCredentials("owner", password, token)


async def _video_membership(rt: Runtime, session: AsyncSession) -> None:
    product = await catalog.create_product(
        session,
        ProductCreate(name="视频会员 Video membership", kind="membership", description="一个月 · one month"),
        actor=ACTOR,
    )
    sku = await catalog.create_sku(
        session,
        SkuCreate(
            product_id=product.id,
            code="VIDEO-1M",
            name="Monthly 月卡",
            face_value_minor=2500,
            price_minor=1990,
            cost_minor=1500,
            code_rule=CodeRule(min_length=16, max_length=16, alphabet="upper_alnum"),
            max_per_order=5,
        ),
        actor=ACTOR,
    )
    data = "\n".join(_code(16) for _ in range(60)).encode()
    await importing.import_codes(
        rt.db,
        session,
        rt.vault,
        sku,
        parse_code_file(data),
        importing.BatchMeta(supplier="Demo supplier"),
        actor=ACTOR,
    )


async def _game_card(rt: Runtime, session: AsyncSession) -> None:
    product = await catalog.create_product(
        session,
        ProductCreate(name="游戏点卡 Game point card", kind="game_points", description="100 点 · 100 points"),
        actor=ACTOR,
    )
    sku = await catalog.create_sku(
        session,
        SkuCreate(
            product_id=product.id,
            code="GAME-100",
            name="100 points 100点",
            face_value_minor=1000,
            price_minor=950,
            cost_minor=880,
            code_rule=CodeRule(card_no_required=True, min_length=12, max_length=12, alphabet="digits"),
            encrypt_card_no=True,
            max_per_order=10,
        ),
        actor=ACTOR,
    )
    lines = ["卡号,卡密,有效期"] + [f"G100{n:08d},{secrets.randbelow(10**12):012d},2027-12-31" for n in range(1, 41)]
    await importing.import_codes(
        rt.db,
        session,
        rt.vault,
        sku,
        parse_code_file("\n".join(lines).encode("gb18030")),
        importing.BatchMeta(supplier="Demo game publisher", unit_cost_minor=880),
        actor=ACTOR,
    )


async def _gift_card_segment(rt: Runtime, session: AsyncSession) -> None:
    product = await catalog.create_product(
        session,
        ProductCreate(name="礼品卡 Gift card (segment)", kind="gift_card", description="号段卡 · serial range"),
        actor=ACTOR,
    )
    sku = await catalog.create_sku(
        session,
        SkuCreate(
            product_id=product.id,
            code="GIFT-50",
            name="¥50 gift card 50元礼品卡",
            face_value_minor=5000,
            price_minor=4800,
            cost_minor=4500,
            stock_kind="segment",
            max_per_order=1000,
        ),
        actor=ACTOR,
    )
    await segments.add_segment(
        rt.db,
        session,
        sku,
        prefix="GC",
        width=8,
        start=10_000_001,
        end=10_005_000,
        meta=importing.BatchMeta(supplier="Demo card issuer"),
        actor=ACTOR,
    )
