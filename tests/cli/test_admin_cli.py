"""`kaquan admin create` and `kaquan admin token`: the first owner and automation tokens, from the shell."""

import re

from sqlalchemy import select
from tests.support.cli import Kaquan
from tests.support.loops import in_own_loop
from typer.testing import Result

from kaquan import identity
from kaquan.identity.models import AdminUser
from kaquan.kit.db import Database

PASSWORD = "a long shell passphrase"


def admin(kaquan: Kaquan, *args: str, stdin: str | None = None) -> Result:
    return kaquan("admin", *args, stdin=stdin)


def users(kaquan: Kaquan) -> list[tuple[str, str, str]]:
    async def work() -> list[tuple[str, str, str]]:
        db = Database(kaquan.database_url)
        try:
            async with db.read() as session:
                rows = (await session.execute(select(AdminUser).order_by(AdminUser.id))).scalars()
                return [(u.username, u.role, u.password_hash) for u in rows]
        finally:
            await db.dispose()

    return in_own_loop(work)


def who(kaquan: Kaquan, token: str) -> identity.Identity | None:
    async def work() -> identity.Identity | None:
        db = Database(kaquan.database_url)
        try:
            return await identity.authenticate_token(db, token)
        finally:
            await db.dispose()

    return in_own_loop(work)


def test_the_first_owner_is_created_with_a_password_from_stdin(kaquan: Kaquan) -> None:
    result = admin(kaquan, "create", "--username", "Root", "--role", "owner", "--password-stdin", stdin=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert "admin user root (owner) created" in result.stdout
    assert PASSWORD not in result.output
    [(name, role, hashed)] = users(kaquan)
    assert (name, role) == ("root", "owner") and hashed.startswith("$argon2id$")


def test_the_password_prompt_hides_and_confirms(kaquan: Kaquan) -> None:
    result = admin(kaquan, "create", "--username", "ops", "--role", "operator", stdin=f"{PASSWORD}\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output
    assert [(n, r) for n, r, _ in users(kaquan)] == [("ops", "operator")]


def test_there_is_no_password_argument(kaquan: Kaquan) -> None:
    kaquan.ok("migrate")

    result = admin(kaquan, "create", "--username", "root", "--password", PASSWORD)

    assert result.exit_code == 2
    assert users(kaquan) == []


def test_a_weak_password_a_duplicate_or_an_unknown_role_is_refused_and_creates_nothing(kaquan: Kaquan) -> None:
    admin(kaquan, "create", "--username", "root", "--password-stdin", stdin=PASSWORD)
    before = kaquan.state()

    weak = admin(kaquan, "create", "--username", "ann", "--password-stdin", stdin="short\n")
    duplicate = admin(kaquan, "create", "--username", "ROOT", "--password-stdin", stdin=PASSWORD)
    role = admin(kaquan, "create", "--username", "ann", "--role", "god", "--password-stdin", stdin=PASSWORD)

    assert (weak.exit_code, duplicate.exit_code, role.exit_code) == (1, 1, 1)
    assert "(weak_password)" in weak.stderr
    assert "(username_taken)" in duplicate.stderr
    assert "(unknown_role)" in role.stderr
    assert "Traceback" not in weak.output + duplicate.output + role.output
    assert kaquan.state() == before


def test_a_token_is_printed_once_and_carries_the_asked_scopes(kaquan: Kaquan) -> None:
    admin(kaquan, "create", "--username", "fin", "--role", "finance", "--password-stdin", stdin=PASSWORD)

    scoped = admin(kaquan, "token", "--username", "fin", "--name", "export", "--scope", "finance.read")
    full = admin(kaquan, "token", "--username", "fin", "--name", "all")

    assert scoped.exit_code == 0 and full.exit_code == 0, scoped.output + full.output
    [token] = re.findall(r"kqt_\S+", scoped.stdout)
    found = who(kaquan, token)
    assert found is not None and found.username == "fin" and {p.value for p in found.permissions} == {"finance.read"}
    [everything] = re.findall(r"kqt_\S+", full.stdout)
    every = who(kaquan, everything)
    assert every is not None and "finance.write" in every.permissions


def test_a_token_beyond_the_role_or_for_nobody_is_refused_and_creates_nothing(kaquan: Kaquan) -> None:
    admin(kaquan, "create", "--username", "sup", "--role", "support", "--password-stdin", stdin=PASSWORD)
    before = kaquan.state()

    beyond = admin(kaquan, "token", "--username", "sup", "--name", "x", "--scope", "finance.write")
    nobody = admin(kaquan, "token", "--username", "ghost", "--name", "x")
    unknown = admin(kaquan, "token", "--username", "sup", "--name", "x", "--scope", "root")

    assert "(scope_not_allowed)" in beyond.stderr and beyond.exit_code == 1
    assert "(user_not_found)" in nobody.stderr and nobody.exit_code == 1
    assert unknown.exit_code == 2
    assert "kqt_" not in beyond.output + nobody.output + unknown.output
    assert kaquan.state() == before
