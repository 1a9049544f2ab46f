"""What every statement reader shares: bytes to checked text, header rows to columns, cells to money and time.

Text is decoded a chunk at a time (bounded memory) and strictly: a byte that
does not decode in the file's encoding rejects the file naming the first bad
line, never a silent replacement character. Cells are parsed by hand with
integers only (no float, no Decimal on the hot path) and validated strictly.
"""

import codecs
import csv
import functools
import gzip
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import IO, Final, cast

from kaquan.kit.errors import BadInput
from kaquan.kit.money import Money
from kaquan.statements.lines import StatementRejected

BEIJING: Final = timezone(timedelta(hours=8), "Asia/Shanghai")
CHUNK_BYTES: Final = 1 << 20
MAX_LINE_BYTES: Final = 1 << 20  # a longer "line" is not a statement row: refuse before memory grows
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_SPOOL_BYTES = 16 << 20
_SCALE: Final = (1, 10, 100, 1000, 10_000)


# --- bytes ---------------------------------------------------------------------------------------


class Prefixed(io.RawIOBase):
    """A binary stream with bytes already read from it put back in front (to sniff a file's first bytes)."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "memoryview | bytearray") -> int:  # type: ignore[override]
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def sniff(stream: IO[bytes], size: int = 4) -> tuple[bytes, IO[bytes]]:
    """The first `size` bytes, and a stream that still starts with them."""
    if stream.seekable():
        start = stream.tell()
        head = stream.read(size)
        stream.seek(start)
        return head, stream
    head = stream.read(size)
    return head, io.BufferedReader(Prefixed(head, stream), CHUNK_BYTES)


def ungzipped(stream: IO[bytes]) -> IO[bytes]:
    """The stream itself, or its decompressed content when it is gzip (bills downloaded with tar_type=GZIP)."""
    head, stream = sniff(stream, 2)
    if head == _GZIP_MAGIC:
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    return stream


def is_zip(stream: IO[bytes]) -> tuple[bool, IO[bytes]]:
    head, stream = sniff(stream, 4)
    return head == _ZIP_MAGIC, stream


def seekable(stream: IO[bytes]) -> IO[bytes]:
    """A seekable copy of the stream where it is not one (zip and XLSX need it), spilled to disk past 16 MB."""
    if stream.seekable():
        return stream
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - handed to the caller, open
    while block := stream.read(CHUNK_BYTES):
        spool.write(block)
    spool.seek(0)
    return cast(IO[bytes], spool)


def _chunks(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) in whole lines; the last chunk may lack its final newline (a truncated file)."""
    line_no = 1
    rest = b""
    while block := stream.read(CHUNK_BYTES):
        block = rest + block
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            if len(block) > MAX_LINE_BYTES:
                raise StatementRejected("a line is longer than any statement row", line=line_no)
            rest = block
            continue
        rest = block[cut:]
        yield line_no, block[:cut]
        line_no += block.count(b"\n", 0, cut)
    if rest:
        yield line_no, rest


def normal_encoding(encoding: str) -> str:
    """The codec's canonical name; StatementRejected for a name Python does not know."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise StatementRejected(f"unknown text encoding {encoding!r}") from None


def text_lines(stream: IO[bytes], encoding: str) -> Iterator[str]:
    """The file's lines, line ends kept, decoded strictly; a UTF-8 BOM is dropped.

    A file that does not decode is rejected at its first bad line. A GBK file
    is also refused when it is in fact UTF-8 (its first non-ASCII chunk is
    valid UTF-8): such bytes often decode as GBK too, into nonsense.
    """
    decoder = BlockDecoder(encoding)
    for line_no, block in _chunks(stream):
        yield from io.StringIO(decoder(block, line_no), newline="")


class BlockDecoder:
    """Decodes a file's blocks of whole lines in order, strictly, naming the line a failure is on."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.codec = normal_encoding(encoding)
        self._gbk_family = self.codec in ("gbk", "gb2312", "gb18030")
        self._checked_not_utf8 = not self._gbk_family
        self._first = True

    def __call__(self, block: bytes, line_no: int) -> str:
        if self._first:
            self._first = False
            if block.startswith(_BOM):
                if self._gbk_family:
                    raise StatementRejected(f"the file is UTF-8 (it starts with a BOM), not {self.encoding}", line=1)
                block = block[len(_BOM) :]
        if not self._checked_not_utf8 and not block.isascii():
            self._checked_not_utf8 = True
            if _is_utf8(block):
                bad = line_no + _first_non_ascii_line(block)
                raise StatementRejected(f"the file is UTF-8, not {self.encoding}", line=bad)
        try:
            return block.decode(self.codec)
        except UnicodeDecodeError as error:
            bad = line_no + block.count(b"\n", 0, error.start)
            raise StatementRejected(f"the file is not {self.encoding} text", line=bad) from None


def _is_utf8(block: bytes) -> bool:
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start >= len(block) - 3 and error.reason == "unexpected end of data"
    return True


def _first_non_ascii_line(block: bytes) -> int:
    for index, byte in enumerate(block):
        if byte >= 0x80:
            return block.count(b"\n", 0, index)
    return 0


def detect_encoding(stream: IO[bytes]) -> tuple[str, IO[bytes]]:
    """UTF-8 when the file starts with a BOM or its first megabyte decodes as UTF-8, else GBK."""
    head, stream = sniff(stream, CHUNK_BYTES)
    if head.startswith(_BOM) or _is_utf8(head):
        return "utf-8", stream
    return "gbk", stream


# --- rows and columns ----------------------------------------------------------------------------


class Rows:
    """CSV records with the physical line each one ends on (for messages); blank lines are skipped."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._reader = csv.reader(lines, strict=True)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        reader = self._reader
        try:
            for record in reader:
                if record:
                    yield reader.line_num, record
        except csv.Error as error:
            raise StatementRejected(f"the CSV does not parse: {error}", line=reader.line_num) from None


def header_name(cell: str) -> str:
    """A header cell as a name: outer spaces, tabs and backticks stripped, ASCII brackets as full-width ones."""
    return cell.strip().strip("`").strip().replace("(", "（").replace(")", "）")


class Columns:
    """A header row, looked up by name; every required name must be there."""

    def __init__(self, cells: Sequence[str], *, line: int, required: Iterable[str], what: str) -> None:
        self.names = [header_name(cell) for cell in cells]
        self.width = len(self.names)
        self._index = {name: i for i, name in reversed(list(enumerate(self.names)))}
        missing = [name for name in required if name not in self._index]
        if missing:
            raise StatementRejected(
                f"{what}: the header row has no column {', '.join(missing)}", line=line, column=missing[0]
            )

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        return self._index[name]

    def optional(self, name: str) -> int | None:
        return self._index.get(name)


# --- cells ---------------------------------------------------------------------------------------


def minor_units(text: str, digits: int = 2) -> int | None:
    """A decimal amount ("12.34", "-0.5", "100") as integer minor units with `digits` decimals; None if invalid.

    At most `digits` decimals; no exponent, no grouping, no sign but a leading minus.
    """
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    whole, dot, fraction = text.partition(".")
    if not whole or not (whole.isascii() and whole.isdigit()):
        return None
    if dot:
        if not fraction or len(fraction) > digits or not (fraction.isascii() and fraction.isdigit()):
            return None
        value = int(whole) * _SCALE[digits] + int(fraction) * _SCALE[digits - len(fraction)]
    else:
        value = int(whole) * _SCALE[digits]
    return -value if negative else value


def yuan(minor: int, digits: int = 2) -> str:
    """Minor units as the decimal text statements print: 1990 -> "19.90", -5 -> "-0.05"."""
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), _SCALE[digits])
    return f"{sign}{whole}.{fraction:0{digits}d}" if digits else f"{sign}{whole}"


def amount(text: str, *, line: int, column: str, digits: int = 2) -> int:
    value = minor_units(text, digits)
    if value is None:
        raise StatementRejected(f"{text!r} is not an amount with at most {digits} decimals", line=line, column=column)
    return value


@functools.cache
def currency_digits(code: str) -> int | None:
    """The decimals of kaquan's minor unit for a currency (CNY 2, JPY 0); None where kaquan does not book it."""
    try:
        shown = Money(0, code).format()  # "CNY 0.00", "JPY 0": kit.money is the one place that defines units
    except BadInput:
        return None
    return len(shown.partition(".")[2])


def currency_of(text: str, *, line: int, column: str) -> tuple[str, int]:
    """An ISO 4217 code (any case) kaquan books, and its minor-unit decimals."""
    code = text.strip().upper()
    digits = currency_digits(code)
    if digits is None:
        raise StatementRejected(f"kaquan does not book the currency {text!r}", line=line, column=column)
    return code, digits


class LocalTimes:
    """Local times in one of `formats` as aware UTC datetimes; recent ones remembered (files are in time order)."""

    def __init__(self, zone: tzinfo, *, formats: Sequence[str]) -> None:
        self._zone = zone
        self._formats = formats
        self._seen: dict[str, datetime] = {}

    def __call__(self, text: str, *, line: int, column: str) -> datetime:
        seen = self._seen.get(text)
        if seen is not None:
            return seen
        for pattern in self._formats:
            try:
                moment = datetime.strptime(text, pattern)  # noqa: DTZ007 - the zone is attached next
            except ValueError:
                continue
            if len(self._seen) >= 4096:
                self._seen.clear()
            self._seen[text] = moment = moment.replace(tzinfo=self._zone).astimezone(UTC)
            return moment
        raise StatementRejected(f"{text!r} is not a date and time", line=line, column=column)


def iso_time(text: str, zone: tzinfo, *, line: int, column: str) -> datetime:
    """ISO 8601 with or without an offset (local time in `zone` without one), or "YYYY-MM-DD HH:MM:SS"; UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise StatementRejected(f"{text!r} is not a date and time", line=line, column=column) from None
    if len(text) < 16:
        raise StatementRejected(f"{text!r} is a date without a time", line=line, column=column)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)
