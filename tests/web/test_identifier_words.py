"""The identifiers the console stores are shown in words, with the identifier small beside them: every audit
action a service records, every API token scope, and a refusal whose code the console has no sentence for.

The first test reads the sources, so an audit action added tomorrow without words fails here today.
"""

import ast
import re
from pathlib import Path

import httpx
import pytest
from tests.support.builders import buy, given_sku_with_codes
from tests.support.console import Console, console_sign_in
from tests.support.console_words import Reader
from tests.support.downloads import read_csv, read_xlsx
from tests.support.identity import given_user

import kaquan
from kaquan.identity.permissions import Permission
from kaquan.runtime import Runtime
from kaquan.web.i18n import MESSAGES, translator
from kaquan.web.i18n_identifiers import AUDIT_ACTIONS, SCOPES, status_note
from kaquan.web.shop_words import MESSAGES as SHOP_MESSAGES

SOURCES = Path(kaquan.__file__).parent
# Call sites whose action is computed: the actions each can record. A new computed site fails until listed here.
COMPUTED = {
    ("channels/agents/accounts.py", "f'agent.{kind}'"): {"agent.topup", "agent.adjustment"},
    ("risk/rules.py", "action"): {"risk.rule_enabled", "risk.rule_disabled"},
}
DOTTED = re.compile(r"^[a-z_]+(?:\.[a-z_]+)+$")


def recorded_actions() -> set[str]:
    """Every action the sources pass to `audit.record` (or `record`), as literals or through `COMPUTED`."""
    found: set[str] = set()
    for path in SOURCES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 3:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name != "record":
                continue
            action = node.args[2]
            literal = literals(action)
            if literal is None:
                site = (path.relative_to(SOURCES).as_posix(), ast.unparse(action))
                assert site in COMPUTED, f"{site}: a computed audit action; list what it records in COMPUTED"
                literal = COMPUTED[site]
            found |= literal
    return found


def literals(expr: ast.expr) -> set[str] | None:
    """The strings an expression of literals can be (`"a.b"`, `"a.b" if x else "a.c"`), None if it computes one."""
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        body, orelse = literals(expr.body), literals(expr.orelse)
        return None if body is None or orelse is None else body | orelse
    return None


def test_every_audit_action_a_service_records_has_words_in_both_languages() -> None:
    recorded = recorded_actions()

    assert len(recorded) > 60
    assert recorded - set(AUDIT_ACTIONS) == set()
    for lang in ("zh", "en"):
        assert all(MESSAGES[lang][f"audit.action.{action}"] for action in recorded)


def test_every_scope_has_words_in_both_languages() -> None:
    assert set(SCOPES) == {p.value for p in Permission}
    assert all(MESSAGES["zh"][f"scope.{p.value}"] != MESSAGES["en"][f"scope.{p.value}"] for p in Permission)


def raw_identifiers(page: str) -> list[str]:
    """Dotted identifiers a person would read as text: outside the small monospace set beside the words."""
    reader = Reader()
    reader.feed(page)
    return [text for text in reader.texts if DOTTED.match(text)]


async def given_a_trail(rt: Runtime, client: httpx.AsyncClient) -> tuple[Console, str]:
    """Alice (owner) signed in, a delivered order with a note on it, and a token that may read finance."""
    await given_user(rt, "alice", "owner")
    bought = await buy(rt, await given_sku_with_codes(rt, 2, code="WORDS-1"))
    assert bought.ok, bought.error
    console = await console_sign_in(client)
    assert (await console.post(f"/admin/orders/{bought.number}/notes", {"note": "called"})).status_code == 303
    form = {"name": "bi", "scopes": Permission.FINANCE_READ.value}
    assert (await console.post("/admin/me/tokens", form)).status_code == 200
    return console, bought.number


@pytest.mark.parametrize(
    ("lang", "note", "signed_in", "finance"),
    [("zh", "添加订单备注", "登录", "查看财务"), ("en", "Order note added", "Signed in", "Read finance")],
)
async def test_the_audit_trail_and_the_tokens_speak_words_with_the_identifier_beside(
    rt: Runtime, client: httpx.AsyncClient, lang: str, note: str, signed_in: str, finance: str
) -> None:
    console, _ = await given_a_trail(rt, client)
    client.cookies.set("lang", lang)

    trail = await console.get("/admin/audit")
    me = await console.get("/admin/me")
    filtered = await console.get("/admin/audit?action=order.note_added")

    assert f'{note} <small class="mono ident">order.note_added</small>' in trail.text
    assert f'{signed_in} <small class="mono ident">identity.session.created</small>' in trail.text
    assert f'<option value="order.note_added" selected>{note}</option>' in filtered.text
    assert f'<span class="scope" data-scope="finance.read">{finance}</span>' in me.text
    assert raw_identifiers(trail.text) == [] and raw_identifiers(me.text) == []
    header, *rows = read_csv(await console.get("/admin/me/tokens.csv"))
    assert finance in rows[0][header.index(MESSAGES[lang]["token.scopes"])]
    _, *entries = read_xlsx(await console.get("/admin/audit.xlsx?action=order.note_added"))
    assert [entry[3:5] for entry in entries] == [[note, "order.note_added"]]


@pytest.mark.parametrize(
    ("lang", "generic"), [("zh", "与当前状态冲突，未做任何更改。"), ("en", "That conflicts with the current state")]
)
async def test_a_refusal_the_console_has_no_sentence_for_is_worded_by_its_status_with_its_code_beside(
    rt: Runtime, client: httpx.AsyncClient, lang: str, generic: str
) -> None:
    console, number = await given_a_trail(rt, client)
    client.cookies.set("lang", lang)
    assert "error.order_not_unpaid" not in SHOP_MESSAGES[lang]  # a code with no sentence of its own

    refused = await console.post(f"/admin/orders/{number}/cancel", {"reason": "paid already"})

    assert refused.status_code == 409
    words = re.search(r'<p class="lead" id="error-words" data-generic="1">(.*?)</p>', refused.text, re.S)
    assert words is not None, refused.text
    assert generic in words.group(1)
    assert '<span class="mono ident">order_not_unpaid</span>' in words.group(1)
    assert MESSAGES[lang]["refusal.code"] in words.group(1)


# Notes a service computes: an example of each, as it writes them.
COMPUTED_NOTES = {
    ("orders/staff.py", "f'cancelled by {actor}: {why}'"): "cancelled by alice: buyer asked",
    ("payments/refunds.py", "note"): "refunded through alipay (R-1)",
}
PERSONS_NOTES = {("channels/agents/refunds.py", "reason"), ("orders/service.py", "note")}  # a reason as typed


def status_notes() -> list[str]:
    """Every note the sources pass to `lifecycle.move`, literal or an example of a computed one."""
    found = []
    for path in SOURCES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "move"):
                continue
            for note in (keyword.value for keyword in node.keywords if keyword.arg == "note"):
                site = (path.relative_to(SOURCES).as_posix(), ast.unparse(note))
                if isinstance(note, ast.Constant) and isinstance(note.value, str):
                    found.append(note.value)
                elif site not in PERSONS_NOTES:
                    assert site in COMPUTED_NOTES, f"{site}: a computed note; add an example to COMPUTED_NOTES"
                    found.append(COMPUTED_NOTES[site])
    return found


def test_every_note_a_service_writes_on_a_status_change_is_worded_in_chinese() -> None:
    zh = translator("zh")
    notes = status_notes()

    assert len(notes) >= 5
    assert {note: status_note(zh, note) == note for note in notes} == dict.fromkeys(notes, False)
    assert status_note(zh, "refunded through alipay (R-1)") == "经支付宝退款（退款单号 R-1）"
    assert status_note(translator("en"), "cancelled by alice: buyer asked") == "cancelled by alice: buyer asked"
    assert status_note(zh, "买家电话要求退款") == "买家电话要求退款"  # a person's own words stay as written
