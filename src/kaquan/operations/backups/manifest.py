"""A backup's manifest: what it holds, from which schema, taken when, and the checksum of its data file.

A backup is a directory of two files: `manifest.json` and the data file (`kaquan.db`, an SQLite
database, or `kaquan.dump`, a pg_dump archive in custom format). The master key is never in it:
the database holds data keys only wrapped by the master key, so a stolen backup opens no code
without the key kept elsewhere. `master_key_id` names (without revealing) the key the stored keys
were wrapped under, so a restore can tell the operator which key it needs.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kaquan.operations.backups.errors import BadBackup

MANIFEST = "manifest.json"
FORMAT = 1
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Manifest:
    kind: str  # sqlite or postgresql
    data_file: str
    schema_revision: str
    taken_at: str  # ISO 8601, UTC
    kaquan_version: str
    sha256: str
    size_bytes: int
    counts: dict[str, int] = field(default_factory=dict)  # rows per table at the backup's moment
    master_key_ids: list[str] = field(default_factory=list)  # hex ids of the master keys that wrap stored keys
    server_version: str = ""  # PostgreSQL's, for pg_restore's sake
    format: int = FORMAT

    def write(self, directory: Path) -> None:
        text = json.dumps(asdict(self), indent=2, ensure_ascii=False, sort_keys=True)
        (directory / MANIFEST).write_text(text + "\n", encoding="utf-8")

    @property
    def orders(self) -> int:
        return self.counts.get("orders", 0)


def read(directory: Path) -> Manifest:
    """The manifest of the backup in `directory`, its data file checked against the recorded checksum."""
    path = directory / MANIFEST
    if not path.is_file():
        raise BadBackup(f"{directory} is not a kaquan backup: no {MANIFEST} in it", path=str(directory))
    try:
        raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**raw)
    except (ValueError, TypeError) as exc:
        raise BadBackup(f"{path} cannot be read: {exc}", path=str(path)) from None
    if manifest.format != FORMAT or manifest.kind not in ("sqlite", "postgresql"):
        raise BadBackup(f"{path}: unknown backup format {manifest.format} of kind {manifest.kind!r}", path=str(path))
    data = directory / manifest.data_file
    if data.name != manifest.data_file or not data.is_file():
        raise BadBackup(f"{directory}: the data file {manifest.data_file!r} is missing", path=str(directory))
    if checksum(data) != manifest.sha256:
        raise BadBackup(f"{data}: its checksum does not match the manifest's; the backup is damaged", path=str(data))
    return manifest


def checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
