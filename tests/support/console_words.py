"""What a person reads on a console page: text nodes and the attributes a screen shows or reads out, without
what is shown verbatim (codes, secrets, preformatted text)."""

from dataclasses import dataclass, field
from html.parser import HTMLParser

VERBATIM_TAGS = {"script", "style", "code", "kbd", "pre", "samp", "textarea"}
VERBATIM_CLASSES = {"mono", "code", "secret", "verbatim"}
READ_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")


@dataclass
class Reader(HTMLParser):
    """The text a person reads: text nodes and the attributes a screen shows or reads out."""

    texts: list[str] = field(default_factory=list)
    verbatim: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = set((found.get("class") or "").split())
        inside = bool(self.verbatim and self.verbatim[-1])
        if tag not in {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}:
            self.verbatim.append(inside or tag in VERBATIM_TAGS or bool(classes & VERBATIM_CLASSES))
        if not inside:
            self.texts.extend(value.strip() for name in READ_ATTRIBUTES if (value := found.get(name)))

    def handle_endtag(self, tag: str) -> None:
        if self.verbatim and tag not in {"br", "img", "input", "meta", "link", "hr", "source", "wbr"}:
            self.verbatim.pop()

    def handle_data(self, data: str) -> None:
        if not (self.verbatim and self.verbatim[-1]) and data.strip():
            self.texts.append(data.strip())
