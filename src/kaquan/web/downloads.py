"""A generated file as an HTTP download: the right media type and a filename that survives Chinese characters."""

from typing import Any
from urllib.parse import quote

from fastapi.responses import Response

from kaquan.kit.tables import MEDIA_TYPES, Format, Table, encode


def attachment(filename: str) -> str:
    """`Content-Disposition` with an ASCII fallback and the UTF-8 name (RFC 6266 / RFC 5987)."""
    fallback = "".join(char if _plain(char) else "_" for char in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _plain(char: str) -> bool:
    return char.isascii() and char.isprintable() and char not in '"\\'


def table_download(table: Table, fmt: Format, stem: str) -> Response:
    """The table as `<stem>.csv` or `<stem>.xlsx`; never cached, since lists hold buyers' contacts."""
    return Response(
        encode(table, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={"Content-Disposition": attachment(f"{stem}.{fmt}"), "Cache-Control": "no-store"},
    )


# The OpenAPI answer of a console page whose list also downloads (`?format=csv|xlsx`): the page, or the file.
PAGE_OR_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the page, or with `format` its list as a CSV (UTF-8 with BOM) or XLSX download",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
            MEDIA_TYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

DOWNLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "the list as a file",
        "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()},
    }
}
"""What a download route declares (with `response_class=Response`): the document then names both file types."""
