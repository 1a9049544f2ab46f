"""The shop's categories in the console: the list with how many products each holds, new ones, renaming."""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan.catalog import categories
from kaquan.catalog.schemas import CategoryName
from kaquan.kit.bounds import Id
from kaquan.web.console.access import CatalogRead, CatalogWrite
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import RuntimeDep

router = console_router()

Name = Annotated[str, Form(max_length=64)]


@router.get("/admin/categories")
async def category_list(request: Request, rt: RuntimeDep, admin: CatalogRead) -> Response:
    async with rt.db.read() as session:
        named = await categories.list_categories(session)
    return page(request, admin, "categories.html", {"categories": named})


@router.post("/admin/categories")
async def create_category(rt: RuntimeDep, admin: CatalogWrite, name: Name) -> Response:
    data = form_model(CategoryName, name=name)
    async with rt.db.transaction() as session:
        await categories.create_category(session, data.name, actor=admin.actor)
    return RedirectResponse("/admin/categories", status_code=303)


@router.post("/admin/categories/{category_id}")
async def rename_category(rt: RuntimeDep, admin: CatalogWrite, category_id: Id, name: Name) -> Response:
    """Renames the category and moves its products with it."""
    data = form_model(CategoryName, name=name)
    async with rt.db.transaction() as session:
        await categories.rename_category(session, category_id, data.name, actor=admin.actor)
    return RedirectResponse("/admin/categories", status_code=303)
