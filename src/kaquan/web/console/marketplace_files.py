"""A marketplace's order file imported from the console: checked whole, then delivered in batches, as the CLI does.

The answer is what the operator chose: the results page (each line's outcome and order, never a code), the
results as CSV or XLSX, or the deliveries file for uploading to the marketplace (CSV with the codes in
plaintext, for people who may reveal codes only; the reveal is recorded by the inventory as every
delivery is). Importing the same file again places nothing twice: its lines come back as replays with the
same orders and codes, so any of the answers can be fetched again.
"""

from typing import Annotated, Literal

from fastapi import File, Form, Request, UploadFile
from fastapi.responses import Response

from kaquan.audit import service as audit
from kaquan.channels import marketplace
from kaquan.identity.permissions import Permission
from kaquan.kit.errors import BadInput, Forbidden
from kaquan.kit.tables import Cell, Table
from kaquan.web.console.marketplaces import ChannelsWrite
from kaquan.web.console.rendering import console_router, page
from kaquan.web.deps import RuntimeDep
from kaquan.web.downloads import PAGE_OR_DOWNLOAD, table_download
from kaquan.web.i18n import Translate, language, translator

router = console_router()

MAX_ORDER_FILE_BYTES = 8 * 2**20
Answer = Literal["page", "csv", "xlsx", "deliveries"]
DELIVERY_COLUMNS = ("marketplace_order_id", "order_no", "card_no", "secret", "expires_on")


async def _read(file: UploadFile) -> bytes:
    data = await file.read(MAX_ORDER_FILE_BYTES + 1)
    if len(data) > MAX_ORDER_FILE_BYTES:
        raise BadInput(f"the file is larger than {MAX_ORDER_FILE_BYTES // 2**20} MiB; split it", field="file")
    return data


def results_table(answers: list[marketplace.Delivered], t: Translate) -> Table:
    header = ["mp.line", "mp.marketplace_order", "mp.sku", "mp.quantity", "mp.outcome", "mp.order", "mp.status"]
    rows: list[list[Cell]] = [
        [
            a.line.line_no,
            a.line.request.marketplace_order_id,
            a.line.request.sku,
            a.line.request.quantity,
            t(f"mp.outcome.{a.outcome}"),
            a.order_no,
            t(f"account.status.{a.status}") if a.status else None,
        ]
        for a in answers
    ]
    return Table(t("mp.import_results"), [t(key) for key in header], rows)


def deliveries_table(answers: list[marketplace.Delivered]) -> Table:
    rows: list[list[Cell]] = [
        [a.line.request.marketplace_order_id, a.order_no, code.card_no, code.secret, code.expires_on]
        for a in answers
        for code in a.codes
    ]
    return Table("deliveries", DELIVERY_COLUMNS, rows)


@router.post(
    "/admin/marketplaces/order-files",
    responses={
        200: {
            "description": "the results page, or the results (CSV, XLSX) or the deliveries file (CSV) as chosen",
            "content": PAGE_OR_DOWNLOAD[200]["content"],
        }
    },
)
async def import_order_file(
    request: Request,
    rt: RuntimeDep,
    admin: ChannelsWrite,
    store: Annotated[str, Form(max_length=40)],
    file: Annotated[UploadFile, File()],
    answer: Annotated[Answer, Form()] = "page",
) -> Response:
    """Check the whole file (a bad line refuses it, naming every bad line, nothing placed), then deliver it."""
    if answer == "deliveries" and Permission.CODES_REVEAL not in admin.permissions:
        raise Forbidden("the deliveries file holds the codes in plaintext: it needs the codes.reveal permission")
    data = await _read(file)
    code = store.strip()
    t = translator(language(request))
    try:
        async with rt.db.read() as session:
            lines = await marketplace.order_files.check_order_file(
                session, code, data, max_per_order=rt.settings.max_per_order
            )
    except marketplace.order_files.OrderFileRejected as rejected:
        context = {"store": code, "rejected": rejected.details.get("problems", []), "message": rejected.message}
        return page(request, admin, "marketplace_import.html", context, status=400)
    answers = await marketplace.order_files.import_orders(rt.db, rt.vault, code, lines)
    if answer == "deliveries":
        deliveries = deliveries_table(answers)
        async with rt.db.transaction() as session:  # the inventory recorded the reveals for the store; this names who
            await audit.record(
                session,
                admin.actor,
                "marketplace.deliveries_downloaded",
                target=marketplace.channel_of(code),
                after={"orders": sum(bool(a.codes) for a in answers), "codes": sum(len(a.codes) for a in answers)},
                ip=admin.ip,
            )
        return table_download(deliveries, "csv", f"deliveries-{code}")
    if answer in ("csv", "xlsx"):
        return table_download(results_table(answers, t), answer, f"order-file-{code}")
    counts = {
        outcome: sum(a.outcome == outcome for a in answers)
        for outcome in ("placed", "replayed", "conflict", "out_of_stock")
    }
    return page(request, admin, "marketplace_import.html", {"store": code, "answers": answers, "counts": counts})
