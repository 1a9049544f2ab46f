"""Product images: an operator's upload checked, stripped of its metadata, resized, stored, and read back.

Whatever the upload was (JPEG, PNG, WebP, GIF), the shop serves JPEG re-encoded from the pixels alone, so
EXIF (a phone's location, the camera) and any payload hidden in the original never reach a buyer. Each image
is kept at a few widths (never enlarged) so a phone does not download a desktop picture.
"""

import io
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kaquan.audit import service as audit
from kaquan.catalog.errors import ImageNotAccepted, ImageNotFound, ImageTooLarge
from kaquan.catalog.models import ProductImage as ProductImage
from kaquan.catalog.models import ProductImageFile as ProductImageFile
from kaquan.catalog.service import get_product
from kaquan.kit import clock
from kaquan.kit.bounds import INT32_MAX

MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000  # past this a decoder spends seconds and hundreds of MiB: a decompression bomb
MIN_SIDE = 64
WIDTHS = (320, 640, 1200)
FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
CONTENT_TYPE = "image/jpeg"


@dataclass(frozen=True)
class Rendition:
    width: int
    data: bytes


@dataclass(frozen=True)
class Prepared:
    width: int
    height: int
    renditions: list[Rendition]


def prepare(data: bytes) -> Prepared:
    """The upload decoded and re-encoded at each width; a file that is not a picture kaquan takes is refused."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(f"the image is larger than {MAX_IMAGE_BYTES // 2**20} MiB", max_bytes=MAX_IMAGE_BYTES)
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format
            if kind not in FORMATS:
                raise ImageNotAccepted(f"{kind or 'this file'} is not a JPEG, PNG, WebP or GIF image")
            if probe.width * probe.height > MAX_PIXELS:
                raise ImageTooLarge(f"the image has more than {MAX_PIXELS:,} pixels", max_pixels=MAX_PIXELS)
            probe.seek(0)
            picture = ImageOps.exif_transpose(probe).convert("RGBA")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise ImageNotAccepted("the file is not a readable image") from None
    if min(picture.size) < MIN_SIDE:
        raise ImageNotAccepted(f"the image is smaller than {MIN_SIDE} pixels on a side", min_side=MIN_SIDE)
    flat = Image.new("RGB", picture.size, (255, 255, 255))
    flat.paste(picture, mask=picture.getchannel("A"))
    widths = sorted({min(width, flat.width) for width in WIDTHS})
    return Prepared(flat.width, flat.height, [Rendition(width, _encode(flat, width)) for width in widths])


def _encode(picture: Image.Image, width: int) -> bytes:
    height = max(1, round(picture.height * width / picture.width))
    resized = picture if width == picture.width else picture.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    resized.save(out, "JPEG", quality=85, optimize=True, progressive=True)
    return out.getvalue()


async def add_image(session: AsyncSession, product_id: int, data: bytes, *, actor: str) -> ProductImage:
    """Store an upload as the product's last image."""
    await get_product(session, product_id)
    prepared = prepare(data)
    last = await session.scalar(select(func.max(ProductImage.position)).where(ProductImage.product_id == product_id))
    image = ProductImage(
        product_id=product_id,
        position=(last or 0) + 1,
        width=prepared.width,
        height=prepared.height,
        created_at=clock.now(),
    )
    session.add(image)
    await session.flush()
    for rendition in prepared.renditions:
        session.add(
            ProductImageFile(image_id=image.id, width=rendition.width, content_type=CONTENT_TYPE, data=rendition.data)
        )
    await session.flush()
    await audit.record(
        session,
        actor,
        "product.image_added",
        target=f"product:{product_id}",
        after={"image": image.id, "width": prepared.width, "height": prepared.height, "bytes": len(data)},
    )
    return image


async def remove_image(session: AsyncSession, image_id: int, *, actor: str) -> int:
    """Delete an image and its renditions; returns its product's id."""
    image = await session.get(ProductImage, image_id) if 1 <= image_id <= INT32_MAX else None
    if image is None:
        raise ImageNotFound(image_id)
    await session.execute(delete(ProductImageFile).where(ProductImageFile.image_id == image_id))
    await session.delete(image)
    await session.flush()
    await audit.record(
        session, actor, "product.image_removed", target=f"product:{image.product_id}", before={"image": image_id}
    )
    return image.product_id


async def move_image(session: AsyncSession, image_id: int, step: Literal[-1, 1], *, actor: str) -> int:
    """Swap an image with its neighbour before (-1) or after (1) it; returns its product's id.

    At either end nothing moves."""
    image = await session.get(ProductImage, image_id) if 1 <= image_id <= INT32_MAX else None
    if image is None:
        raise ImageNotFound(image_id)
    siblings = (await images_of(session, [image.product_id]))[image.product_id]
    at = next(i for i, sibling in enumerate(siblings) if sibling.id == image_id)
    if not 0 <= at + step < len(siblings):
        return image.product_id
    other = siblings[at + step]
    image.position, other.position = other.position, image.position
    await session.flush()
    await audit.record(
        session,
        actor,
        "product.images_reordered",
        target=f"product:{image.product_id}",
        after={"order": [sibling.id for sibling in sorted(siblings, key=lambda s: s.position)]},
    )
    return image.product_id


async def images_of(session: AsyncSession, product_ids: list[int]) -> dict[int, list[ProductImage]]:
    """Each product's images in their order (products without any are left out)."""
    if not product_ids:
        return {}
    rows = await session.execute(
        select(ProductImage)
        .where(ProductImage.product_id.in_(product_ids))
        .order_by(ProductImage.product_id, ProductImage.position)
    )
    found: dict[int, list[ProductImage]] = {}
    for image in rows.scalars():
        found.setdefault(image.product_id, []).append(image)
    return found


def widths_of(image: ProductImage) -> list[int]:
    """The widths stored for an image (the same rule as `prepare`, so no query is needed)."""
    return sorted({min(width, image.width) for width in WIDTHS})


async def image_file(session: AsyncSession, image_id: int, width: int) -> ProductImageFile:
    """The stored rendition closest to `width` from above (the largest when none is as wide)."""
    stored = list(
        (await session.execute(select(ProductImageFile.width).where(ProductImageFile.image_id == image_id))).scalars()
    )
    if not stored:
        raise ImageNotFound(image_id)
    chosen = min((w for w in stored if w >= width), default=max(stored))
    file = await session.get(ProductImageFile, (image_id, chosen))
    if file is None:
        raise ImageNotFound(image_id)
    return file
