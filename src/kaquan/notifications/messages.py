"""The words of a notice, in the buyer's language (zh-CN or en): a subject and a plain-text body.

A delivery notice links to the order page and never carries the codes: a mail
or an SMS is read on lock screens, forwarded and kept in providers' archives,
while the order page shows codes only to the browser that bought them, to the
holder of the lookup secret (查单密码) or to the buyer signed in with the same
verified contact. Plain text only: nothing a mail client could load or run.
"""

from dataclasses import dataclass

LANGUAGES = ("zh", "en")


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str  # the e-mail body
    short: str  # the SMS: one line


def money(minor: int, currency: str) -> str:
    """¥19.90 for yuan; other currencies by their code, e.g. USD 5.00."""
    sign = "-" if minor < 0 else ""
    whole, cents = divmod(abs(minor), 100)
    amount = f"{sign}{whole:,}.{cents:02d}"
    return f"¥{amount}" if currency == "CNY" else f"{currency} {amount}"


def _lang(lang: str) -> str:
    return lang if lang in LANGUAGES else "zh"


def delivered_notice(lang: str, *, shop: str, number: str, item: str, quantity: int, link: str) -> Notice:
    if _lang(lang) == "en":
        return Notice(
            subject=f"{shop}: your order {number} is ready",
            text=(
                f"The codes of your order {number} are ready.\n\n"
                f"{item} × {quantity}\n\n"
                f"See them on the order page:\n{link}\n\n"
                "For your safety the codes are not in this message. Open the page in the browser you bought with, "
                "sign in with this e-mail address, or use the order's lookup secret.\n"
                "If you did not place this order, ignore this message."
            ),
            short=f"{shop}: the codes of order {number} ({item} × {quantity}) are ready: {link}",
        )
    return Notice(
        subject=f"{shop}：您的订单 {number} 已发货",
        text=(
            f"您的订单 {number} 的卡密已发放。\n\n"
            f"{item} × {quantity}\n\n"
            f"请在订单页查看：\n{link}\n\n"
            "为保障安全，本邮件不包含卡密。请在下单时的浏览器中打开订单页，或用本邮箱登录，或使用订单的查单密码。\n"
            "如果这不是您的订单，请忽略本邮件。"
        ),
        short=f"{shop}：订单 {number}（{item} × {quantity}）的卡密已发放，请查看：{link}",
    )


def refunded_notice(lang: str, *, shop: str, number: str, item: str, amount: str, link: str) -> Notice:
    if _lang(lang) == "en":
        return Notice(
            subject=f"{shop}: {amount} refunded for order {number}",
            text=(
                f"We refunded {amount} for your order {number} ({item}).\n\n"
                "The money goes back the way you paid; your bank or wallet may take a few days to show it.\n\n"
                f"Order page:\n{link}\n"
            ),
            short=f"{shop}: {amount} refunded for order {number}. {link}",
        )
    return Notice(
        subject=f"{shop}：订单 {number} 已退款 {amount}",
        text=(
            f"您的订单 {number}（{item}）已退款 {amount}。\n\n"
            "款项将原路退回，银行或钱包到账可能需要几天。\n\n"
            f"订单页：\n{link}\n"
        ),
        short=f"{shop}：订单 {number} 已退款 {amount}。{link}",
    )
