"""Demo data: a few products with freshly generated codes, so the shop has something to sell."""

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from kaquan import demo_art, identity
from kaquan.catalog import images as catalog_images
from kaquan.catalog import service as catalog
from kaquan.catalog.rules import CodeRule
from kaquan.catalog.schemas import ProductCreate, SkuCreate
from kaquan.channels import agents
from kaquan.channels import pricing as channels
from kaquan.channels.agents import ordering
from kaquan.identity.errors import UsernameTaken
from kaquan.identity.permissions import ROLES
from kaquan.inventory import Viewer, importing, parse_code_file, segments
from kaquan.runtime import Runtime

ACTOR = "demo"
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _code(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


@dataclass(frozen=True)
class AgentCredentials:
    agent: str
    key_id: str
    secret: str


DEMO_AGENT = "demo-agent"
DEMO_AGENT_ORDER = "DEMO-0001"
# Agents buy the code SKUs through the open API at a wholesale price (minor units).
AGENT_PRICES = {"VIDEO-1M": 1800, "GAME-100": 880}


async def create_demo_agent(rt: Runtime) -> AgentCredentials | None:
    """A demo agent with ¥1,000 on deposit, the code SKUs on its price list, one API key and one delivered order.

    None if it exists already.
    """
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
    # One delivered order, so the README's walkthrough has an agent's order to refund.
    await rt.agent_orders.place(
        agent, ordering.AgentOrderRequest(DEMO_AGENT_ORDER, "VIDEO-1M", 1), Viewer(f"agent:{DEMO_AGENT}", "demo order")
    )
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


@dataclass(frozen=True)
class DemoProduct:
    """A demo product as the shop shows it; its SKUs follow in `_SKUS`."""

    art: str
    create: ProductCreate


_PRODUCTS = (
    DemoProduct(
        "video",
        ProductCreate(
            name="星河视频 VIP 会员",
            kind="membership",
            category="影音会员",
            featured=True,
            sort_order=1,
            description="星河视频全站 VIP：热门剧集抢先看、1080P 蓝光画质、跳过广告，手机、电脑、平板通用。",
            usage="1. 打开星河视频 App，进入「我的 › 兑换中心」。\n2. 输入卡密，点击「立即兑换」。\n"
            "3. 会员即时生效，可在「我的会员」中查看到期时间。",
            validity="卡密 2027-12-31 前兑换有效；兑换后按所购时长计算",
        ),
    ),
    DemoProduct(
        "game",
        ProductCreate(
            name="幻境 Online 游戏点卡",
            kind="game_points",
            category="游戏点卡",
            featured=True,
            sort_order=2,
            description="幻境 Online 官方点卡，可兑换游戏内点券，购买时装、坐骑与月卡。",
            usage="1. 登录官网「充值中心」，选择「点卡充值」。\n2. 依次输入卡号与卡密，选择要充值的角色。\n"
            "3. 点券在 5 分钟内到账。",
            validity="有效期至 2027-12-31",
        ),
    ),
    DemoProduct(
        "gift",
        ProductCreate(
            name="优选超市电子礼品卡",
            kind="gift_card",
            category="礼品卡",
            sort_order=5,
            description="全国优选超市门店及线上商城通用，可分次使用，送礼自用两相宜。",
            usage="结账时出示卡号，或在优选商城 App「我的 › 礼品卡 › 绑定」中输入卡号。",
            validity="自购买之日起 3 年内有效",
        ),
    ),
    DemoProduct(
        "music",
        ProductCreate(
            name="云音乐黑胶 VIP",
            kind="membership",
            category="影音会员",
            sort_order=3,
            description="千万曲库畅听、无损音质下载、专属音效与会员皮肤。",
            usage="打开云音乐 App，点击「我的 › 会员中心 › 兑换码」，输入卡密即可开通。",
            validity="卡密 2027-06-30 前兑换有效",
        ),
    ),
    DemoProduct(
        "book",
        ProductCreate(
            name="畅读电子书年卡",
            kind="membership",
            category="阅读学习",
            sort_order=4,
            description="五十万册正版电子书与有声书一年畅读，支持手机、平板与墨水屏阅读器。",
            usage="在畅读 App「书架 › 右上角 › 兑换」中输入卡密，年卡立即生效。",
            validity="兑换后 365 天",
        ),
    ),
    DemoProduct(
        "cloud",
        ProductCreate(
            name="云盘超级会员",
            kind="membership",
            category="工具软件",
            featured=True,
            sort_order=6,
            description="5TB 空间、极速下载、在线解压与视频倍速播放。",
            usage="登录云盘网页版或 App，进入「会员中心 › 卡密兑换」，输入卡密后刷新即可。",
            validity="兑换后按所购时长计算，卡密 2027-12-31 前有效",
        ),
    ),
    DemoProduct(
        "food",
        ProductCreate(
            name="外卖满 30 减 10 红包",
            kind="voucher",
            category="生活服务",
            sort_order=7,
            description="外卖平台通用红包，满 30 元立减 10 元，每单限用一张。",
            usage="在外卖 App「我的 › 红包卡券 › 兑换」中输入卡密，下单时自动抵扣。",
            validity="兑换后 7 天内有效",
        ),
    ),
)


@dataclass(frozen=True)
class DemoSku:
    """A demo SKU and how many codes it gets (0: sold out)."""

    product: int  # index into _PRODUCTS
    create: SkuCreate
    codes: int


def _sku(
    product: int, code: str, name: str, price: int, face: int, cost: int, codes: int, *, max_per_order: int = 10
) -> DemoSku:
    data = SkuCreate(
        product_id=1,  # replaced by the created product's id
        code=code,
        name=name,
        face_value_minor=face,
        price_minor=price,
        cost_minor=cost,
        code_rule=CodeRule(min_length=16, max_length=16, alphabet="upper_alnum"),
        max_per_order=max_per_order,
    )
    return DemoSku(product, data, codes)


# The first three are the walkthrough's SKUs (README): VIDEO-1M, GAME-100, GIFT-50, in that order and with
# those ids; the rest make the shop worth browsing.
_MORE_SKUS = (
    _sku(0, "VIDEO-3M", "季卡（3 个月）", 5400, 7500, 4200, 30, max_per_order=5),
    _sku(0, "VIDEO-12M", "年卡（12 个月）", 19800, 25000, 16000, 12, max_per_order=2),
    _sku(1, "GAME-500", "500 点", 4700, 5000, 4400, 25),
    _sku(3, "MUSIC-1M", "月卡", 1500, 1800, 1100, 6, max_per_order=5),
    _sku(3, "MUSIC-12M", "年卡", 14800, 18000, 11000, 20, max_per_order=2),
    _sku(4, "BOOK-1Y", "年卡", 8800, 12800, 6000, 30, max_per_order=3),
    _sku(5, "CLOUD-1M", "月卡", 2500, 3000, 1900, 40, max_per_order=5),
    _sku(5, "CLOUD-1Y", "年卡", 24800, 29800, 19000, 15, max_per_order=2),
    _sku(6, "FOOD-10", "满 30 减 10", 790, 1000, 500, 0),
)


async def seed(rt: Runtime) -> bool:
    """Create the demo catalog, pictures and stock once; returns False when the shop already has products."""
    async with rt.db.transaction() as session:
        if await catalog.list_products(session):
            return False
        products = [await catalog.create_product(session, item.create, actor=ACTOR) for item in _PRODUCTS]
        await _video_membership(rt, session, products[0].id)
        await _game_card(rt, session, products[1].id)
        await _gift_card_segment(rt, session, products[2].id)
        for more in _MORE_SKUS:
            data = more.create.model_copy(update={"product_id": products[more.product].id})
            sku = await catalog.create_sku(session, data, actor=ACTOR)
            if more.codes:
                await _import_generated(rt, session, sku, more.codes)
        for item, product in zip(_PRODUCTS, products, strict=True):
            await catalog_images.add_image(session, product.id, demo_art.picture(item.art), actor=ACTOR)
    return True


async def _import_generated(rt: Runtime, session: AsyncSession, sku: catalog.Sku, count: int) -> None:
    data = "\n".join(_code(16) for _ in range(count)).encode()
    await importing.import_codes(
        rt.db, session, rt.vault, sku, parse_code_file(data), importing.BatchMeta(supplier="演示供应商"), actor=ACTOR
    )


async def _video_membership(rt: Runtime, session: AsyncSession, product_id: int) -> None:
    sku = await catalog.create_sku(
        session,
        SkuCreate(
            product_id=product_id,
            code="VIDEO-1M",
            name="月卡（1 个月）",
            face_value_minor=2500,
            price_minor=1990,
            cost_minor=1500,
            code_rule=CodeRule(min_length=16, max_length=16, alphabet="upper_alnum"),
            max_per_order=5,
        ),
        actor=ACTOR,
    )
    await _import_generated(rt, session, sku, 60)


async def _game_card(rt: Runtime, session: AsyncSession, product_id: int) -> None:
    sku = await catalog.create_sku(
        session,
        SkuCreate(
            product_id=product_id,
            code="GAME-100",
            name="100 点",
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


async def _gift_card_segment(rt: Runtime, session: AsyncSession, product_id: int) -> None:
    sku = await catalog.create_sku(
        session,
        SkuCreate(
            product_id=product_id,
            code="GIFT-50",
            name="50 元礼品卡",
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
