"""The published OpenAPI document describes every answer: a JSON success names its model.

A route answering `dict[str, Any]` is published as "any object", so clients, the docs and
the fuzz test (tests/web/test_fuzz_api.py) learn nothing of its shape. HTML pages and CSV
exports declare their own media type (a string); redirects (3xx) and 204 carry no body.
"""

from typing import Any

from kaquan.web.app import create_app

DOCUMENT = create_app().openapi()


def _names_a_model(schema: dict[str, Any]) -> bool:
    """A `$ref` to a component, a list of them, or a choice between them."""
    if "$ref" in schema:
        return True
    if schema.get("type") == "array":
        return _names_a_model(schema.get("items", {}))
    choices: list[dict[str, Any]] = schema.get("anyOf") or schema.get("oneOf") or []
    return bool(choices) and all(_names_a_model(choice) for choice in choices)


def _answers() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", status, answer)
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if status.startswith(("2", "3"))
    ]


def test_every_json_success_names_its_model() -> None:
    json_answers = [
        (label, status, answer["content"]["application/json"].get("schema", {}))
        for label, status, answer in _answers()
        if "application/json" in answer.get("content", {})
    ]
    assert len(json_answers) > 80
    assert [f"{label} {status}" for label, status, schema in json_answers if not _names_a_model(schema)] == []


def test_every_other_success_declares_its_media_type_or_no_body() -> None:
    undeclared = [
        f"{label} {status}"
        for label, status, answer in _answers()
        if any(not media.get("schema") for media in answer.get("content", {}).values())
        or (not answer.get("content") and status != "204" and not status.startswith("3"))
    ]
    assert undeclared == []


def test_the_document_knows_html_csv_and_redirects() -> None:
    media = {kind for _, _, answer in _answers() for kind in answer.get("content", {})}
    assert {"application/json", "text/html", "text/csv"} <= media
    assert ("POST /orders", "303") in {(label, status) for label, status, _ in _answers()}
