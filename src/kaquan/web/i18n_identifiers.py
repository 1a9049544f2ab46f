"""Words for the identifiers the console used to show as they are stored: audit actions, API token scopes,
and a refusal whose code the console has no sentence for; zh-CN and English, merged into `i18n.MESSAGES`.

An identifier stays visible, small and in monospace beside its words, because an auditor filters by it
and an integrator types it; the words are what a person reads first.
"""

import re
from collections.abc import Callable

# action: (中文, English). Every action a service records is here; tests/web/test_identifier_words.py
# reads the sources for `audit.record(…)` calls and fails on an action without words.
AUDIT_ACTIONS: dict[str, tuple[str, str]] = {
    "agent.adjustment": ("调整代理商余额", "Agent balance adjusted"),
    "agent.created": ("新建代理商", "Agent created"),
    "agent.key_allowlist": ("修改密钥 IP 白名单", "Key IP allowlist changed"),
    "agent.key_issued": ("签发 API 密钥", "API key issued"),
    "agent.key_revoked": ("吊销 API 密钥", "API key revoked"),
    "agent.key_rotated": ("轮换 API 密钥", "API key rotated"),
    "agent.topup": ("代理商充值", "Agent topped up"),
    "agent.updated": ("修改代理商资料", "Agent updated"),
    "agent_order.refunded": ("代理商订单退款", "Agent order refunded"),
    "batch.imported": ("导入卡密批次", "Batch imported"),
    "batch.quarantined": ("隔离批次", "Batch quarantined"),
    "callback_delivery.replayed": ("重发回调", "Callback replayed"),
    "callback_endpoint.removed": ("删除回调地址", "Callback URL removed"),
    "callback_endpoint.set": ("设置回调地址", "Callback URL set"),
    "category.created": ("新建分类", "Category created"),
    "category.renamed": ("重命名分类", "Category renamed"),
    "channel.configured": ("配置渠道", "Channel configured"),
    "channel.price_removed": ("删除渠道价格", "Channel price removed"),
    "channel.price_set": ("设置渠道价格", "Channel price set"),
    "channel.quota_set": ("设置渠道配额", "Channel quota set"),
    "codes.revealed": ("查看明文卡密", "Codes revealed"),
    "flashsale.event_created": ("创建秒杀活动", "Flash sale created"),
    "flashsale.event_ended": ("结束秒杀活动", "Flash sale ended"),
    "identity.login.failed": ("登录失败", "Sign-in failed"),
    "identity.password.changed": ("修改密码", "Password changed"),
    "identity.session.created": ("登录", "Signed in"),
    "identity.session.revoked": ("退出登录", "Signed out"),
    "identity.token.created": ("创建 API 令牌", "API token created"),
    "identity.token.revoked": ("吊销 API 令牌", "API token revoked"),
    "identity.totp.enabled": ("启用两步验证", "Two-factor turned on"),
    "identity.totp.reset": ("重置两步验证", "Two-factor reset"),
    "identity.totp.started": ("开始设置两步验证", "Two-factor set-up started"),
    "identity.user.created": ("新建用户", "User created"),
    "identity.user.disabled": ("停用用户", "User disabled"),
    "identity.user.enabled": ("启用用户", "User enabled"),
    "marketplace.deliveries_downloaded": ("下载平台发货文件", "Marketplace deliveries downloaded"),
    "marketplace.secret_revealed": ("查看平台推送密钥", "Marketplace secret revealed"),
    "marketplace.secret_rotated": ("轮换平台推送密钥", "Marketplace secret rotated"),
    "marketplace.store_added": ("添加平台店铺", "Marketplace store added"),
    "marketplace_order.refunded": ("平台订单退款", "Marketplace order refunded"),
    "order.cancelled": ("取消订单", "Order cancelled"),
    "order.delivery_resent": ("重发发货通知", "Delivery notice resent"),
    "order.note_added": ("添加订单备注", "Order note added"),
    "product.created": ("新建商品", "Product created"),
    "product.image_added": ("添加商品图片", "Product image added"),
    "product.image_removed": ("删除商品图片", "Product image removed"),
    "product.images_reordered": ("调整图片顺序", "Product images reordered"),
    "product.updated": ("修改商品", "Product updated"),
    "reconciliation.annotated": ("对账差异备注", "Reconciliation note added"),
    "reconciliation.bill_fetch_retried": ("重新获取对账单", "Bill fetch retried"),
    "reconciliation.mapping_saved": ("保存对账单字段映射", "Statement mapping saved"),
    "reconciliation.resolved": ("处理对账差异", "Reconciliation difference resolved"),
    "refill_rule.disabled": ("停用补货规则", "Refill rule turned off"),
    "refill_rule.set": ("设置补货规则", "Refill rule set"),
    "refund.approved": ("批准退款", "Refund approved"),
    "refund.rejected": ("驳回退款", "Refund rejected"),
    "refund.requested": ("申请退款", "Refund requested"),
    "refund.retried": ("重试退款", "Refund retried"),
    "risk.list_added": ("加入风控名单", "Added to a risk list"),
    "risk.list_removed": ("移出风控名单", "Removed from a risk list"),
    "risk.review_approved": ("风控审核通过", "Held order approved in risk review"),
    "risk.review_declined": ("风控审核拒绝", "Held order declined in risk review"),
    "risk.review_fraud": ("风控审核标记欺诈", "Held order marked as fraud in risk review"),
    "risk.model_promoted": ("启用风控模型", "Risk model promoted"),
    "risk.model_trained": ("训练风控模型（影子运行）", "Risk model trained (in shadow)"),
    "risk.rule_added": ("新增风控规则", "Risk rule added"),
    "risk.rule_disabled": ("停用风控规则", "Risk rule turned off"),
    "risk.rule_enabled": ("启用风控规则", "Risk rule turned on"),
    "segment.added": ("添加号段", "Serial segment added"),
    "settlement.rule_set": ("设置结算规则", "Settlement rule set"),
    "settlement.run_confirmed": ("确认结算单", "Settlement statement confirmed"),
    "settlement.run_created": ("生成结算单", "Settlement statement drawn up"),
    "sku.created": ("新建 SKU", "SKU created"),
    "sku.updated": ("修改 SKU", "SKU updated"),
    "stock.transferred": ("调拨库存", "Stock transferred"),
    "voucher.redeemed": ("核销券", "Voucher redeemed"),
    "warehouse.created": ("新建仓库", "Warehouse created"),
}

# permission scope: (中文, English); every `identity.permissions.Permission` (a test holds them equal).
SCOPES: dict[str, tuple[str, str]] = {
    "account.self": ("本人账户", "Own account"),
    "audit.read": ("查看审计日志", "Read the audit trail"),
    "catalog.read": ("查看商品", "Read the catalog"),
    "catalog.write": ("编辑商品", "Edit the catalog"),
    "channels.read": ("查看渠道与代理商", "Read channels and agents"),
    "channels.write": ("管理渠道与代理商", "Manage channels and agents"),
    "codes.reveal": ("查看明文卡密", "Reveal codes"),
    "finance.read": ("查看财务", "Read finance"),
    "finance.write": ("处理财务", "Run finance"),
    "flashsale.read": ("查看秒杀", "Read flash sales"),
    "flashsale.write": ("管理秒杀", "Run flash sales"),
    "leaks.trace": ("泄露追踪", "Trace leaks"),
    "orders.read": ("查看订单", "Read orders"),
    "orders.support": ("订单售后", "Support orders"),
    "redeem": ("核销", "Redeem vouchers"),
    "refunds.approve": ("审批退款", "Approve refunds"),
    "refunds.request": ("申请退款", "Request refunds"),
    "risk.read": ("查看风控", "Read risk control"),
    "risk.write": ("管理风控", "Run risk control"),
    "stock.read": ("查看库存", "Read stock"),
    "stock.write": ("管理库存", "Manage stock"),
    "users.manage": ("管理用户", "Manage users"),
}

_CRASH = (
    "系统出了问题，未能完成此操作。请稍后再试；如仍出错，请把下方的请求编号告诉技术人员。",
    "Something went wrong on our side. Please try again shortly; if it keeps happening, quote the request ID.",
)

# A refusal whose code has no sentence of its own: what its status means, in the page's language.
REFUSALS: dict[str, tuple[str, str]] = {
    "400": ("提交的内容有误，未做任何更改。", "Something in the request is not right; nothing was changed."),
    "401": ("请先登录。", "Please sign in first."),
    "403": ("您没有执行此操作的权限。", "You may not do that."),
    "404": ("要找的内容不存在。", "What you asked for does not exist."),
    "409": ("与当前状态冲突，未做任何更改。", "That conflicts with the current state; nothing was changed."),
    "413": ("提交的内容过大。", "What you sent is too large."),
    "422": ("提交的内容有误，请检查后重试。", "Something in the form is not right; check it and try again."),
    "429": ("操作过于频繁，请稍后再试。", "Too many attempts; please try again shortly."),
    "500": _CRASH,
    "503": ("系统繁忙，请稍后再试。", "The system is busy; please try again shortly."),
    "other": ("请求未能完成，请稍后再试。", "The request could not be completed; please try again later."),
}

# A refusal the console words itself, where the shop's sentence (written for buyers) would mislead an operator.
CONSOLE_REFUSALS: dict[str, tuple[str, str]] = {
    "order_not_found": ("没有这个订单号的订单。", "No order has this number."),
    "not_found": ("要找的页面不存在，可能是链接有误。", "There is no such page; the link may be wrong."),
    "forbidden": ("您的角色没有此页面或操作的权限。", "Your role does not allow this page or action."),
    "csrf_failed": ("页面已过期，请刷新后重试。", "This page has expired; reload it and try again."),
    "method_not_allowed": ("此地址不接受这种请求。", "This address does not take that kind of request."),
    "internal_error": _CRASH,
}

# An error page's heading, by its status; any other status takes "other".
ERROR_HEADINGS: dict[str, tuple[str, str]] = {
    "403": ("没有权限", "Not allowed"),
    "404": ("未找到", "Not found"),
    "409": ("操作未完成", "Not done"),
    "422": ("请检查填写的内容", "Please check the form"),
    "429": ("请稍后再试", "Please wait a moment"),
    "500": ("系统出错", "Something went wrong"),
    "other": ("操作未完成", "Not done"),
}

# What a service writes beside an order's status change (`lifecycle.move(…, note=…)`): a pattern and its words.
# A note matching none (a person's own reason) is shown as written.
STATUS_NOTES: tuple[tuple[re.Pattern[str], str, tuple[str, str]], ...] = (
    (
        re.compile(r"refunded through (?P<gateway>[\w-]+) \((?P<refund>[^)]+)\)"),
        "note.refunded_through",
        ("经{gateway}退款（退款单号 {refund}）", "refunded through {gateway} (refund {refund})"),
    ),
    (
        re.compile(r"paid after its hold lapsed; sold out"),
        "note.paid_after_hold",
        ("锁定到期后才付款，已无库存", "paid after its hold lapsed; sold out"),
    ),
    (re.compile(r"cancelled by the buyer"), "note.cancelled_by_buyer", ("买家取消", "cancelled by the buyer")),
    (re.compile(r"not paid in time"), "note.not_paid_in_time", ("未在时限内付款", "not paid in time")),
    (re.compile(r"declined in risk review"), "note.declined_in_review", ("风控审核拒绝", "declined in risk review")),
    (
        re.compile(r"paid after it was declined in risk review"),
        "note.paid_after_declined",
        ("风控审核拒绝后才付款，将退款", "paid after it was declined in risk review"),
    ),
    (
        re.compile(r"out of stock when filled; refunded to the balance"),
        "note.refunded_to_balance",
        ("发货时缺货，货款已退回预存款", "out of stock when filled; refunded to the balance"),
    ),
    (
        re.compile(r"cancelled by (?P<actor>[^:]+): (?P<why>.*)", re.S),
        "note.cancelled_by",
        ("{actor} 取消：{why}", "cancelled by {actor}: {why}"),
    ),
)

_LANGS = {"zh": 0, "en": 1}

MESSAGES: dict[str, dict[str, str]] = {
    lang: {
        **{f"audit.action.{action}": words[i] for action, words in AUDIT_ACTIONS.items()},
        **{f"scope.{scope}": words[i] for scope, words in SCOPES.items()},
        **{f"refusal.{status}": words[i] for status, words in REFUSALS.items()},
        **{key: words[i] for _, key, words in STATUS_NOTES},
        **{f"refusal.words.{code}": words[i] for code, words in CONSOLE_REFUSALS.items()},
        **{f"error.heading.{status}": words[i] for status, words in ERROR_HEADINGS.items()},
        "error.needs_permission": ("需要的权限：", "Needs the permission: ")[i],
        "error.request_id": ("请求编号", "Request ID")[i],
        "error.technical": ("技术详情（系统原文，供技术人员排查）", "Technical details (the service's own words)")[i],
        "error.back_previous": ("返回上一页", "Back to the previous page")[i],
        "audit.any_action": ("全部操作", "Any action")[i],
        "audit.action_code": ("操作代码", "Action code")[i],
        "audit.target_short": ("对象", "Target")[i],
        "refusal.code": ("错误代码", "Error code")[i],
        "refusal.detail": ("详情（系统原文）：", "Details: ")[i],
    }
    for lang, i in _LANGS.items()
}


def action_words(lang: str, action: str) -> str | None:
    """An audit action in words, or None for one recorded by code this catalogue does not know (a plugin's)."""
    words = AUDIT_ACTIONS.get(action)
    return words[_LANGS.get(lang, 1)] if words else None


def scope_words(lang: str, scope: str) -> str:
    """A permission scope in words; an unknown one (a scope since removed) as itself."""
    words = SCOPES.get(scope)
    return words[_LANGS.get(lang, 1)] if words else scope


def listed_scopes(lang: str, scopes: list[str]) -> str:
    """Scopes in words as one cell of a download: `查看订单、查看财务`, `Read orders, Read finance`."""
    return ("、" if lang == "zh" else ", ").join(scope_words(lang, scope) for scope in scopes)


def status_note(t: Callable[..., str], note: str) -> str:
    """A service's note on a status change in the page's words (`t`); a person's own note as written."""
    for pattern, key, _ in STATUS_NOTES:
        if found := pattern.fullmatch(note):
            values = found.groupdict()
            if "gateway" in values:
                worded = t(f"gateway.{values['gateway']}")
                values["gateway"] = values["gateway"] if worded.startswith("gateway.") else worded
            return t(key, **values)
    return note


def console_refusal_words(lang: str, code: str) -> str:
    """The console's own sentence for a refusal code, or "" where it has none."""
    words = CONSOLE_REFUSALS.get(code)
    return words[_LANGS.get(lang, 1)] if words else ""


def refusal_words(lang: str, status: int) -> str:
    """What a refusal with this status means, for a code the console has no sentence for."""
    words = REFUSALS.get(str(status), REFUSALS["other"])
    return words[_LANGS.get(lang, 1)]
