"""Jinja2 rendering for the server-rendered pages, and what every shop page knows: language, money, time."""

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from kaquan.kit.config import Settings, get_settings
from kaquan.kit.money import display
from kaquan.web.i18n import LANG_COOKIE
from kaquan.web.security import secure_cookie
from kaquan.web.shop_words import HTML_LANG, MESSAGES, chosen_language, shop_translator, with_fallback

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.filters["money"] = lambda minor, currency: display(int(minor), currency)
templates.env.filters["price"] = templates.env.filters["money"]
templates.env.filters["readable_json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)
LANG_COOKIE_DAYS = 365


def _content_in(text: str, content: str) -> Markup:
    """A translated sentence with the words it quotes (a contact, a search) marked as content, not translated."""
    before, _, after = text.partition(content)
    return Markup('{}<span class="content">{}</span>{}').format(before, content, after)


templates.env.filters["content_in"] = _content_in


def _zone_label(moment: datetime) -> str:
    offset = moment.utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    hours, rest = divmod(abs(minutes), 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def _settings(request: Request) -> Settings:
    """The running server's settings (the environment's, for an error raised before the runtime started)."""
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.settings if runtime is not None else get_settings()


def local_time(request: Request) -> Callable[[datetime | None], str]:
    """`when(moment)`: a time in the merchant's zone, labelled with its offset (`2026-12-05 21:40 UTC+8`)."""
    zone = _settings(request).zone()

    def when(moment: datetime | None) -> str:
        if moment is None:
            return "—"
        here = moment.astimezone(zone)
        return f"{here:%Y-%m-%d %H:%M} {_zone_label(here)}"

    return when


def _switch_url(request: Request, lang: str) -> str:
    other = "en" if lang == "zh" else "zh"
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", other)]
    path = request.url.path if request.method == "GET" else "/"
    return f"{path}?{urlencode(query)}"


def shop_context(request: Request) -> tuple[dict[str, Any], str | None]:
    """What every shop template uses, and the language to remember in the cookie (None: nothing new)."""
    lang, fresh = chosen_language(request)
    t = shop_translator(lang)
    settings = _settings(request)

    def error_text(code: str, details: dict[str, Any] | None = None) -> str:
        key = f"error.{code}"
        if key not in MESSAGES[lang]:
            return t("error.generic")
        given = details or {}
        values = {name: value for name, value in given.items() if isinstance(value, int | str)}
        return t(key, **({"seconds": 1, "max": ""} | values | {"seconds": given.get("retry_after", 1)}))

    context = {
        "t": t,
        "lang": lang,
        "html_lang": HTML_LANG[lang],
        "switch_url": _switch_url(request, lang),
        "support_contact": settings.support_contact,
        "time_zone": settings.timezone,
        "zone_offset": _zone_label(datetime.now(settings.zone())),
        "when": local_time(request),
        "error_text": error_text,
    }
    return context, lang if fresh else None


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    remember: str | None = None
    if not name.startswith("console/"):  # a shop page: the console brings its own frame and words
        shared, remember = shop_context(request)
        own = context.get("t")
        if own is not None:  # a page with words of its own (the buyer's account) keeps them beside the shop's
            shared["t"] = with_fallback(shared["lang"], own)
        context = shared | {key: value for key, value in context.items() if key != "t"}
    response = templates.TemplateResponse(request, name, context, status_code=status, headers=headers)
    if remember is not None:
        response.set_cookie(
            LANG_COOKIE,
            remember,
            max_age=LANG_COOKIE_DAYS * 24 * 3600,
            path="/",
            samesite="lax",
            secure=secure_cookie(request),
        )
    return response
