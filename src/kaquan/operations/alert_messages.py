"""The words of an operator alert, in the operators' language (zh-CN or en): a subject and a plain text.

Facts only, never a secret: SKU and warehouse ids, counts, an agent's id, an age in seconds.
"""

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AlertText:
    subject: str
    text: str


def alert_text(kind: str, facts: dict[str, Any], lang: str, *, shop: str) -> AlertText:
    words = _EN if lang == "en" else _ZH
    subject, body = words[kind]
    return AlertText(f"[{shop}] " + subject.format(**facts), body.format(**facts))


_ZH: dict[str, tuple[str, str]] = {
    "low_stock": (
        "库存不足：SKU {sku_id} 在仓库 {warehouse} 仅剩 {available} 件",
        "SKU {sku_id} 在仓库 {warehouse} 的可售库存为 {available} 件，低于补货阈值 {threshold}，且补货规则 {rule_id}"
        " 已无可调拨的库存（来源仓库 {source_warehouse}）。\n请导入新卡密或调整补货规则。",
    ),
    "refill": (
        "已自动补货：SKU {sku_id} 从 {source_warehouse} 调拨 {moved} 件到 {warehouse}",
        "SKU {sku_id} 在仓库 {warehouse} 的可售库存曾低于阈值 {threshold}；补货规则 {rule_id} 已从仓库"
        " {source_warehouse} 调拨 {moved} 件，现可售 {available} 件。",
    ),
    "callback_disabled": (
        "代理商 {agent_id} 的回调地址已停用",
        "代理商 {agent_id} 的回调接收方返回 410 Gone，回调地址已停用，{cancelled} 条待发送回调已取消。\n"
        "请联系代理商确认新的回调地址后重新启用。",
    ),
    "worker_stale": (
        "后台任务进程已停止响应（{age_s} 秒未心跳）",
        "后台任务进程（kaquan worker）已有 {age_s} 秒没有完成一轮处理（上限 {max_age_s} 秒）。\n"
        "发货、通知、回调和过期订单都在等待它：请检查 worker 进程及其日志。",
    ),
    "risk_model_fallback": (
        "风控模型 v{version} 无法加载，风控暂由规则单独决定",
        "生效中的风控模型 v{version} 无法加载（{reason}），所有风控决策已回退为仅按规则评分（原因 model_fallback）。\n"
        "请用 kaquan risk models 查看模型，提升一个可用的模型（kaquan risk promote 版本号 --yes），"
        "或重新训练（kaquan risk train）。",
    ),
}

_EN: dict[str, tuple[str, str]] = {
    "low_stock": (
        "Low stock: SKU {sku_id} has {available} left in warehouse {warehouse}",
        "SKU {sku_id} has {available} available in warehouse {warehouse}, below its refill threshold {threshold},"
        " and refill rule {rule_id} has nothing left to move from warehouse {source_warehouse}.\n"
        "Import new codes or change the refill rule.",
    ),
    "refill": (
        "Refilled: SKU {sku_id}, {moved} moved from {source_warehouse} to {warehouse}",
        "SKU {sku_id} fell below its threshold {threshold} in warehouse {warehouse}; refill rule {rule_id} moved"
        " {moved} from warehouse {source_warehouse}, and {available} are available now.",
    ),
    "callback_disabled": (
        "Agent {agent_id}'s callback endpoint was disabled",
        "Agent {agent_id}'s callback receiver answered 410 Gone: the endpoint is disabled and {cancelled} pending"
        " callbacks were cancelled.\nAsk the agent for its new callback URL, then enable it again.",
    ),
    "worker_stale": (
        "The worker stopped (no heartbeat for {age_s} s)",
        "The worker (kaquan worker) has not finished a pass for {age_s} seconds (the limit is {max_age_s}).\n"
        "Deliveries, notices, callbacks and order expiry wait for it: check the worker process and its log.",
    ),
    "risk_model_fallback": (
        "Risk model v{version} cannot be loaded: the rules decide alone",
        "The active risk model v{version} cannot be loaded ({reason}), so every risk decision falls back to the"
        " rules alone (reason model_fallback).\nSee the models with kaquan risk models, then promote one that"
        " works (kaquan risk promote VERSION --yes) or train a new one (kaquan risk train).",
    ),
}
