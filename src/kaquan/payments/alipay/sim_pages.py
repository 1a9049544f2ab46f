"""The simulated Alipay's pages for the buyer: one small zh-CN page, no external assets."""

import html
from collections.abc import Mapping


def error_page(body: Mapping[str, str]) -> str:
    return page(
        "支付宝 - 出错了",
        f"<p>错误代码 {html.escape(body['sub_code'])}</p><p>{html.escape(body['sub_msg'][:200])}</p>",
    )


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(title)}（模拟）</title><style>"
        "body{font-family:system-ui,sans-serif;background:#f5f5f5;margin:0}"
        "main{max-width:420px;margin:48px auto;background:#fff;padding:24px;border-radius:8px;text-align:center}"
        "h1{color:#1677ff;font-size:20px}.amount{font-size:32px;font-weight:600}"
        "button{background:#1677ff;color:#fff;border:0;border-radius:6px;padding:12px 32px;font-size:18px}"
        ".note{color:#888;font-size:12px}</style></head>"
        f"<body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
