"""The admin API for what the shop shows of a product: its page fields and its pictures."""

from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from kaquan.catalog import images as catalog_images
from kaquan.catalog import service as catalog
from kaquan.catalog.schemas import ProductImageOut, ProductOut, ProductUpdate
from kaquan.identity.permissions import Permission
from kaquan.kit.bounds import Int64
from kaquan.web.content import JSON_ONLY
from kaquan.web.deps import Principal, RuntimeDep, require

router = APIRouter(prefix="/admin/api", tags=["admin"], dependencies=JSON_ONLY)

CatalogRead = Annotated[Principal, require(Permission.CATALOG_READ)]
CatalogWrite = Annotated[Principal, require(Permission.CATALOG_WRITE)]


@router.patch("/products/{product_id}")
async def update_product(rt: RuntimeDep, admin: CatalogWrite, product_id: Int64, body: ProductUpdate) -> ProductOut:
    """Change a product's name, description, category, 使用说明, validity, featured flag, order, or take it off sale."""
    async with rt.db.transaction() as session:
        return ProductOut.model_validate(await catalog.update_product(session, product_id, body, actor=admin.actor))


@router.get("/products/{product_id}/images")
async def list_images(rt: RuntimeDep, admin: CatalogRead, product_id: Int64) -> list[ProductImageOut]:
    async with rt.db.read() as session:
        await catalog.get_product(session, product_id)
        found = await catalog_images.images_of(session, [product_id])
    return [ProductImageOut.model_validate(image) for image in found.get(product_id, [])]


@router.post("/products/{product_id}/images", status_code=201)
async def add_image(
    rt: RuntimeDep, admin: CatalogWrite, product_id: Int64, file: Annotated[UploadFile, File()]
) -> ProductImageOut:
    """Upload a JPEG, PNG, WebP or GIF (at most 8 MiB): 415 for anything else, 413 when too large.

    kaquan re-encodes it (metadata such as EXIF is dropped) at a few widths and serves it under /images/.
    """
    data = await file.read(catalog_images.MAX_IMAGE_BYTES + 1)
    async with rt.db.transaction() as session:
        image = await catalog_images.add_image(session, product_id, data, actor=admin.actor)
        return ProductImageOut.model_validate(image)


@router.delete("/images/{image_id}", status_code=204)
async def remove_image(rt: RuntimeDep, admin: CatalogWrite, image_id: Int64) -> None:
    async with rt.db.transaction() as session:
        await catalog_images.remove_image(session, image_id, actor=admin.actor)
