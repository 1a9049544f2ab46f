"""The test tree's layout: test modules never import each other; what they share lives in tests/support/.

A test module imported by another runs its tests' module-level code twice and couples two specifications;
`tests.conftest` is pytest's to load, and its fixtures reach every test without an import.
"""

import ast
from pathlib import Path

TESTS = Path(__file__).parent
SUPPORT = TESTS / "support"


def _python_files() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def imported_modules(source: str) -> list[str]:
    """Every module an import statement in `source` names, `from x import y` as `x` (and `x.y`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append(base)
            found.extend(f"{base}.{alias.name}" if node.module else f"{base}{alias.name}" for alias in node.names)
    return found


def foreign_test_imports(source: str) -> list[str]:
    """The imports of `source` that reach into the test tree anywhere but tests/support/."""
    return sorted(
        {
            module
            for module in imported_modules(source)
            if module.startswith(".")
            or (module.split(".")[0] == "tests" and module.split(".")[:2] != ["tests", "support"] and module != "tests")
        }
    )


def test_no_module_of_the_test_tree_imports_a_test_module_or_a_conftest() -> None:
    offenders = {
        str(path.relative_to(TESTS)): found
        for path in _python_files()
        if (found := foreign_test_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_helpers_live_in_tests_support_and_nowhere_beside_the_tests() -> None:
    strays = [
        str(path.relative_to(TESTS))
        for path in _python_files()
        if SUPPORT not in path.parents and not path.name.startswith("test_") and path.name != "conftest.py"
    ]
    assert strays == []


def test_the_guard_sees_every_way_to_import_a_test_module() -> None:
    assert foreign_test_imports("from tests.web.test_shop_api import the_error") == [
        "tests.web.test_shop_api",
        "tests.web.test_shop_api.the_error",
    ]
    assert foreign_test_imports("import tests.cli.test_cli") == ["tests.cli.test_cli"]
    assert foreign_test_imports("from tests.conftest import HeadersFor") == [
        "tests.conftest",
        "tests.conftest.HeadersFor",
    ]
    assert foreign_test_imports("from tests import conftest") == ["tests.conftest"]
    assert foreign_test_imports("from .test_cli import kaquan") == [".test_cli", ".test_cli.kaquan"]
    assert foreign_test_imports("def f() -> None:\n    from tests.ledger import given\n") == [
        "tests.ledger",
        "tests.ledger.given",
    ]


def test_the_guard_lets_support_modules_and_the_code_under_test_through() -> None:
    assert foreign_test_imports("from tests.support.cli import Kaquan\nimport tests.support.http") == []
    assert foreign_test_imports("from tests.support import builders\nfrom kaquan.web import app") == []
