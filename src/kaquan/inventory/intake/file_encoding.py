"""A code file's bytes to lines of text, chunk by chunk, choosing its encoding on the first bytes that need one.

A named encoding is used as given. Otherwise a UTF-8 BOM means UTF-8; plain
ASCII needs no choice; the first chunk holding other bytes is tried as UTF-8,
then GB18030 (which reads GBK), and that choice holds for the rest of the file:
a later line that does not decode is an error naming it. A line longer than
`MAX_LINE_CHARS` is a whole-file error rather than an ever-growing buffer.
"""

import codecs
import gc
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Final

from kaquan.inventory.intake.code_lines import ImportFileError

SUPPORTED_ENCODINGS: Final = ("utf-8", "utf-8-sig", "gb18030")
MAX_LINE_CHARS: Final = 64 * 1024


class _Undecodable(Exception):
    """Bytes of a chunk that do not decode; `good` is the part before them (to count lines)."""

    def __init__(self, good: bytes) -> None:
        self.good = good


class _Unreadable(Exception):
    """Bytes that no supported encoding reads, before any was chosen; `good` is what the best one read."""

    def __init__(self, good: bytes) -> None:
        self.good = good


class Decoder:
    """Bytes to text chunk by chunk, choosing the encoding on the first bytes that need one."""

    def __init__(self, encoding: str | None) -> None:
        self.forced = encoding is not None
        self.name: str | None = None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._head = b""  # the file's first bytes, until there are enough to tell a BOM
        self._started = False
        if encoding is not None:
            try:
                info = codecs.lookup(encoding)
                # bytes.decode refuses the codecs that are not text encodings (hex, base64, rot13...).
                if not getattr(info, "_is_text_encoding", True):
                    raise LookupError(encoding)
                self.name = info.name
            except LookupError:
                raise ImportFileError(
                    f"unknown encoding {encoding!r}; use one of {', '.join(SUPPORTED_ENCODINGS)}",
                    encoding=encoding,
                    supported=list(SUPPORTED_ENCODINGS),
                ) from None
            self._decoder = codecs.getincrementaldecoder(self.name)()

    def decode(self, data: bytes, *, final: bool) -> str:
        if self._head:
            data, self._head = self._head + data, b""
        if not self._started:
            if len(data) < len(codecs.BOM_UTF8) and not final and codecs.BOM_UTF8.startswith(data):
                self._head = data
                return ""
            self._started = True
            if self._decoder is None and data.startswith(codecs.BOM_UTF8):
                self.name = "utf-8-sig"
                self._decoder = codecs.getincrementaldecoder(self.name)()
            # A stray BOM (say, a UTF-8-with-BOM file read as plain "utf-8") would otherwise
            # become the first character of the first code.
            return self._decode(data, final).removeprefix("\ufeff")
        return self._decode(data, final)

    def _decode(self, data: bytes, final: bool) -> str:
        if self._decoder is None:
            if data.isascii():
                return data.decode("ascii")
            return self._choose(data, final)
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            raise _Undecodable(data[: max(exc.start, 0)]) from None

    def _choose(self, data: bytes, final: bool) -> str:
        read_up_to = 0
        for name in ("utf-8", "gb18030"):
            decoder = codecs.getincrementaldecoder(name)()
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as exc:
                read_up_to = max(read_up_to, exc.start)
                continue
            self.name, self._decoder = name, decoder
            return text
        raise _Unreadable(data[:read_up_to])


def _unreadable(line_no: int) -> ImportFileError:
    return ImportFileError(
        f"the file's encoding is not readable (line {line_no});"
        " save it as UTF-8 (with or without BOM) or GBK (GB18030)",
        supported=list(SUPPORTED_ENCODINGS),
        line_no=line_no,
    )


def no_codes() -> ImportFileError:
    return ImportFileError("the file holds no codes")


def _breaks_in(data: bytes) -> int:
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")


def line_blocks(chunks: Iterable[bytes], decoder: Decoder) -> Iterator[tuple[int, list[str]]]:
    """The file's lines, a chunk's worth at a time, each block with the number of its first line.

    Lines end at \\n, \\r\\n and \\r only, so line numbers match what an editor shows:
    `str.splitlines` would also split on form feeds, \\x1c-\\x1e, U+0085 and U+2028/9.
    """
    carry = ""  # the start of a line whose end is in a later chunk
    line_no = 1  # of the line in `carry`

    def decoded(data: bytes, final: bool) -> str:
        try:
            text = decoder.decode(data, final=final)
        except _Undecodable as bad:
            raise _undecodable_line(decoder, line_no + _breaks_in(carry.encode() + bad.good)) from None
        except _Unreadable as bad:
            raise _unreadable(line_no + _breaks_in(carry.encode() + bad.good)) from None
        if "\x00" in text:
            # A NUL character means a binary or UTF-16/32 file; its "lines" would be garbage.
            raise _unreadable(line_no + _breaks_in(text[: text.index("\x00")].encode()))
        return text

    for data in chain(chunks, [None]):
        text = carry + (decoded(data, False) if data is not None else decoded(b"", True))
        held = ""
        if "\r" in text:
            if data is not None and text.endswith("\r"):
                text, held = text[:-1], "\r"  # a \n may follow in the next chunk
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        carry = lines.pop() + held
        if data is None and carry:
            lines.append(carry)  # the last line, without a final newline
        if len(carry) > MAX_LINE_CHARS:
            raise ImportFileError(
                f"line {line_no + len(lines)} is longer than {MAX_LINE_CHARS} characters; is this a code file?",
                line_no=line_no + len(lines),
            )
        if lines:
            yield line_no, lines
            line_no += len(lines)


def _undecodable_line(decoder: Decoder, line_no: int) -> ImportFileError:
    if decoder.forced:
        message = f"the file is not valid {decoder.name} (line {line_no})"
    else:
        message = (
            f"line {line_no} is not valid {decoder.name}, the encoding the start of the file is in; "
            "save the whole file as UTF-8 or GBK (GB18030)"
        )
    return ImportFileError(message, line_no=line_no, encoding=decoder.name, supported=list(SUPPORTED_ENCODINGS))


def from_first_content(blocks: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]] | None:
    """The block holding the first non-blank line, cut to start there; None if every line is blank."""
    for start, lines in blocks:
        for index, line in enumerate(lines):
            if line.strip():
                return start + index, lines[index:]
    return None


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while many tuples are built.

    Every few hundred allocations of container objects the collector runs, and
    its older generations rescan all the tuples built so far: that doubles the
    time of a million-line parse. Parsing creates no reference cycles, so nothing
    is lost by collecting afterwards. A stream pauses it while it builds each
    block: with the collector on, a stream of a million lines took four times as long.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
