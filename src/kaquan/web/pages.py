"""Jinja2 rendering for the server-rendered pages."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from kaquan.kit.money import Money

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["money"] = lambda minor, currency: Money(int(minor), currency).format()

# How a buyer knows each way to pay (zh-CN first): "<gateway>:<method>" as offered by payments.
PAYMENT_METHOD_LABELS = {
    "alipay:page": "支付宝 · 电脑网页 Alipay (web)",
    "alipay:wap": "支付宝 · 手机网页 Alipay (mobile)",
    "alipay:qr": "支付宝 · 扫码 Alipay (QR)",
    "wechatpay:native": "微信支付 · 扫码 WeChat Pay (QR)",
    "wechatpay:h5": "微信支付 · 手机浏览器 WeChat Pay (H5)",
    "wechatpay:jsapi": "微信支付 · 微信内 WeChat Pay (in WeChat)",
    "stripe:checkout": "银行卡 · Stripe Card (Stripe)",
    "dev:page": "测试支付 Dev gateway",
}
templates.env.filters["payment_method"] = lambda key: PAYMENT_METHOD_LABELS.get(key, key)


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status, headers=headers)
