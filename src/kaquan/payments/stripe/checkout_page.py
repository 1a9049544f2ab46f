"""The simulated Stripe Checkout page a buyer sees: zh-CN, one button, no external assets."""

import html

from kaquan.payments.stripe import protocol

_SYMBOLS = {"CNY": "¥", "USD": "US$", "EUR": "€", "HKD": "HK$", "JPY": "JP¥", "KRW": "₩"}


def price(amount: int, currency: str) -> str:
    """A Stripe amount as a buyer reads it: "¥19.90", "US$19.90", "JP¥1000"."""
    code = currency.upper()
    return f"{_SYMBOLS.get(code, code + ' ')}{protocol.format_amount(amount, code)}"


def pay(items: list[str], amount: int, currency: str) -> str:
    shown = html.escape(price(amount, currency))
    names = "、".join(html.escape(name) for name in items)
    body = (
        f"<p>{names}</p><p class=amount>{shown}</p>"
        f'<form method="post"><button type="submit">确认付款 {shown}</button></form>'
        "<p class=note>Stripe 模拟器：点击即视为银行卡付款成功。</p>"
    )
    return _page("Stripe 付款", body)


def missing() -> str:
    return _page("找不到该付款页面", "<p>链接无效。</p>")


def not_payable(*, paid: bool) -> str:
    text = "该订单已付款。" if paid else "付款链接已过期，请回到商店重新下单。"
    return _page("无法付款", f"<p>{text}</p>")


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1f36}}
.amount{{font-size:2rem;font-weight:600}}button{{background:#635bff;color:#fff;border:0;border-radius:6px;
padding:.8rem 1.4rem;font-size:1.1rem;cursor:pointer;width:100%}}.note{{color:#697386;font-size:.85rem}}</style>
</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"""
