"""Inventory and channels are used through their public surface: what their `__init__` (and the inner
packages they export) list in `__all__`, never a private submodule.

import-linter cannot say this: an exported namespace (`from kaquan.inventory import custody`) and a
reach into a private module (`from kaquan.inventory.custody import reveal`) are the same edge in its
graph. So this reads every import statement of src/kaquan outside the two modules.
"""

import ast
import importlib
from pathlib import Path

import kaquan

SOURCE = Path(kaquan.__file__).parent
OWNERS = ("kaquan.inventory", "kaquan.channels")
SURFACES = (
    "kaquan.inventory",
    "kaquan.channels",
    "kaquan.channels.agents",
    "kaquan.channels.callbacks",
    "kaquan.channels.marketplace",
)
# Who may reach past the surface, and why.
EXCEPTIONS = {
    # collects every module's tables on purpose, for metadata and migrations
    "kaquan.all_models": {"kaquan.channels.models", "kaquan.channels.callbacks.models", "kaquan.inventory.models"},
    # redeeming a voucher turns a sold code into a redeemed one in the codes table, under inventory's transition
    "kaquan.redemption.redeeming": {"kaquan.inventory.models", "kaquan.inventory.lifecycle"},
}


def _exported(package: str) -> set[str]:
    return set(importlib.import_module(package).__all__)


def reaches_past_the_surface(source: str, *, exceptions: frozenset[str] = frozenset()) -> list[str]:
    """The imports of `source` that name an inventory or channels submodule, or a name their surface does not export."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets: list[tuple[str, str | None]] = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in targets:
            if not module.startswith(OWNERS):
                continue
            if module not in SURFACES:
                reach = module
            elif name is not None and name not in _exported(module):
                reach = f"{module}.{name}"
            else:
                continue
            if reach not in exceptions:
                found.append(reach)
    return found


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_module_outside_inventory_and_channels_reaches_past_their_surface() -> None:
    offenders = {}
    for path in sorted(SOURCE.rglob("*.py")):
        name = _module_name(path)
        if name.startswith(OWNERS):
            continue
        allowed = frozenset(EXCEPTIONS.get(name, set()))
        if found := reaches_past_the_surface(path.read_text(encoding="utf-8"), exceptions=allowed):
            offenders[name] = found
    assert offenders == {}


def test_every_exported_name_exists() -> None:
    for package in SURFACES:
        module = importlib.import_module(package)
        assert [name for name in module.__all__ if not hasattr(module, name)] == [], package


def test_the_guard_refuses_a_private_submodule_and_an_unexported_name() -> None:
    assert reaches_past_the_surface("from kaquan.inventory.custody import reveal") == ["kaquan.inventory.custody"]
    assert reaches_past_the_surface("import kaquan.channels.agents.ordering") == ["kaquan.channels.agents.ordering"]
    assert reaches_past_the_surface("from kaquan.inventory import lifecycle") == ["kaquan.inventory.lifecycle"]
    assert reaches_past_the_surface("from kaquan.channels.agents import key_material") == [
        "kaquan.channels.agents.key_material"
    ]
    assert reaches_past_the_surface("def f() -> None:\n    from kaquan.channels.schemas import ErrorOut\n") == [
        "kaquan.channels.schemas"
    ]


def test_the_guard_lets_the_surface_and_other_modules_through() -> None:
    assert reaches_past_the_surface("from kaquan import channels, inventory") == []
    assert reaches_past_the_surface("from kaquan.inventory import Vault, allocation, custody") == []
    assert reaches_past_the_surface("from kaquan.channels.agents import ordering, create_agent") == []
    assert reaches_past_the_surface("import kaquan.channels\nfrom kaquan.orders import service") == []
    models = frozenset({"kaquan.inventory.models"})
    assert reaches_past_the_surface("from kaquan.inventory.models import Code", exceptions=models) == []
    assert reaches_past_the_surface("from kaquan.inventory import models", exceptions=models) == []
