"""Only `kaquan.kit` knows SQLite from PostgreSQL; every other module asks it for an operation.

Migrations are exempt: they are history, written once per dialect-specific DDL. So are backups and
benchmarks: they drive each dialect's own tools (SQLite's online backup API, pg_dump, pgbench), which is
what they are for.
"""

import ast
from pathlib import Path

import kaquan

SOURCE = Path(kaquan.__file__).parent
EXEMPT = (("kit",), ("migrations",), ("bench",), ("operations", "backups"))
DIALECT_WORDS = ("postgres", "sqlite", "dialect", "asyncpg")


def _outside_kit() -> list[Path]:
    return [
        path
        for path in sorted(SOURCE.rglob("*.py"))
        if not any(path.relative_to(SOURCE).parts[: len(prefix)] == prefix for prefix in EXEMPT)
    ]


def _dialect_mentions(tree: ast.AST) -> list[tuple[int, str]]:
    """Names, attributes, keywords, imports and strings naming a dialect, with their line numbers.

    Docstrings (and other bare string statements) are prose, free to explain what the dialects do.
    """
    prose = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in prose:
            continue
        words: list[str] = []
        if isinstance(node, ast.Name):
            words = [node.id]
        elif isinstance(node, ast.Attribute):
            words = [node.attr]
        elif isinstance(node, ast.keyword) and node.arg is not None:
            words = [node.arg]
        elif isinstance(node, ast.alias):
            words = [node.name]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            words = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            words = [node.value]
        line = getattr(node, "lineno", 0)
        found.extend((line, word) for word in words if any(w in word.lower() for w in DIALECT_WORDS))
    return found


def test_no_module_outside_kit_tests_the_dialect() -> None:
    offences = [
        f"{path.relative_to(SOURCE)}:{line}: {word!r}"
        for path in _outside_kit()
        for line, word in _dialect_mentions(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offences == []


def test_the_guard_sees_each_way_of_asking() -> None:
    probe = ast.parse(
        '"""Docstrings may speak of PostgreSQL."""\n'
        "from kaquan.kit.db import dialect_of\n"
        "if db.is_postgresql: pass\n"
        "Index('ix', 'a', postgresql_where=x)\n"
        "kind = 'sqlite'\n"
        "from sqlalchemy.dialects import postgresql\n"
    )
    assert sorted(line for line, _ in _dialect_mentions(probe)) == [2, 3, 4, 5, 6, 6]
