"""What a buyer reads on a page: its visible words, without the operator's content or codes.

Elements marked `content` (product names, descriptions, the support contact: the operator's own words,
not translated) and `mono` (order numbers, codes, secrets) are left out, and so is the language switch,
which names the other language on purpose. Placeholders and labels for screen readers are words too.
"""

import re
from html.parser import HTMLParser

SKIPPED_CLASSES = {"content", "mono"}
SKIPPED_TAGS = {"script", "style", "title", "svg"}
READ_ATTRIBUTES = ("placeholder", "aria-label")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
KEY = re.compile(
    r"\b(?:account|brand|nav|footer|home|product|stock|kind|gateway|method|order|lookup|pay|dev|error)\.[a-z_:.]+"
)
SNAKE = re.compile(r"\b[a-z]+_[a-z_]+\b")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []
        self.stack: list[bool] = []  # per open element: is it (or an ancestor) skipped

    def _skipping(self) -> bool:
        return bool(self.stack) and self.stack[-1]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = set((found.get("class") or "").split())
        skip = (
            self._skipping()
            or tag in SKIPPED_TAGS
            or bool(classes & SKIPPED_CLASSES)
            or found.get("id") == "lang-switch"
        )
        if not skip:
            self.words.extend(value for name in READ_ATTRIBUTES if (value := found.get(name)))
        if tag not in VOID:
            self.stack.append(skip)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping() and data.strip():
            self.words.append(data.strip())


def visible_text(page: str) -> str:
    reader = _Reader()
    reader.feed(page)
    return "\n".join(reader.words)


def problems(page: str, lang: str) -> list[str]:
    """What a buyer should never read: message keys, raw enum values, escapes, `CNY`, bare UTC, the other language."""
    text = visible_text(page)
    found = [f"untranslated key {key!r}" for key in KEY.findall(text)]
    found += [f"raw value {value!r}" for value in SNAKE.findall(text)]
    found += [f"escape {escape!r}" for escape in re.findall(r"\\u[0-9a-fA-F]{4}", page)]
    found += ["money as CNY"] if re.search(r"\bCNY\b", text) else []
    found += ["UTC without an offset"] if re.search(r"\bUTC\b(?![+-])", text) else []
    if lang == "en":
        found += [f"Chinese in English: {line!r}" for line in text.splitlines() if re.search(r"[\u4e00-\u9fff]", line)]
    else:
        allowed = {"Asia", "Shanghai", "UTC", "VIP", "JavaScript"}  # names Chinese pages write in Latin letters too
        found += [f"English in Chinese: {word!r}" for word in re.findall(r"[A-Za-z]{3,}", text) if word not in allowed]
    return found
