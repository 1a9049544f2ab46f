"""Product pictures: only real images are taken, their metadata never reaches a buyer, each kept at a few widths."""

import pytest
from sqlalchemy import func, select
from tests.support.builders import given_sku
from tests.support.images import exif_of, photo, size_of, transparent_png

from kaquan.catalog import images
from kaquan.catalog.errors import ImageNotAccepted, ImageNotFound, ImageTooLarge, ProductNotFound
from kaquan.catalog.models import ProductImage, ProductImageFile
from kaquan.runtime import Runtime


def test_a_phone_photo_loses_its_exif_and_is_kept_at_three_widths() -> None:
    original = photo(1600, 1200)
    assert exif_of(original), "the test photo must carry EXIF to prove anything"

    prepared = images.prepare(original)

    assert (prepared.width, prepared.height) == (1600, 1200)
    assert [r.width for r in prepared.renditions] == [320, 640, 1200]
    for rendition in prepared.renditions:
        assert exif_of(rendition.data) == {}
        assert size_of(rendition.data) == (rendition.width, rendition.width * 3 // 4)
        assert rendition.data.startswith(b"\xff\xd8")  # JPEG, whatever came in


def test_a_small_picture_is_never_enlarged() -> None:
    prepared = images.prepare(photo(500, 500, kind="PNG"))

    assert [r.width for r in prepared.renditions] == [320, 500]


def test_a_transparent_png_is_flattened_on_white() -> None:
    prepared = images.prepare(transparent_png())

    assert prepared.renditions[0].data.startswith(b"\xff\xd8")


@pytest.mark.parametrize(
    "data",
    [b"just some text, not a picture", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, photo(kind="BMP", exif=False)],
    ids=["text", "empty", "truncated-png", "bmp"],
)
def test_what_is_not_a_jpeg_png_webp_or_gif_is_refused_as_415(data: bytes) -> None:
    with pytest.raises(ImageNotAccepted) as refused:
        images.prepare(data)

    assert refused.value.status == 415
    assert refused.value.code == "image_not_accepted"


def test_a_picture_too_small_to_show_is_refused() -> None:
    with pytest.raises(ImageNotAccepted):
        images.prepare(photo(40, 40, kind="PNG"))


def test_a_file_over_the_size_cap_is_refused_as_413_before_it_is_decoded() -> None:
    with pytest.raises(ImageTooLarge) as refused:
        images.prepare(b"\xff\xd8" + b"\x00" * images.MAX_IMAGE_BYTES)

    assert refused.value.status == 413


def test_a_picture_of_too_many_pixels_is_refused_as_413() -> None:
    with pytest.raises(ImageTooLarge):
        images.prepare(photo(8000, 5001, kind="PNG", exif=False))


async def count(rt: Runtime, table: type[ProductImage] | type[ProductImageFile]) -> int:
    async with rt.db.read() as session:
        return (await session.execute(select(func.count()).select_from(table))).scalar_one()


async def test_images_are_stored_in_upload_order_and_served_at_the_nearest_width(rt: Runtime) -> None:
    sku = await given_sku(rt)
    async with rt.db.transaction() as session:
        first = await images.add_image(session, sku.product_id, photo(1600, 1200), actor="test")
        second = await images.add_image(session, sku.product_id, photo(800, 600, kind="PNG"), actor="test")

    async with rt.db.read() as session:
        found = await images.images_of(session, [sku.product_id])
        small = await images.image_file(session, first.id, 300)
        middle = await images.image_file(session, first.id, 641)
        beyond = await images.image_file(session, second.id, 5000)

    assert [image.id for image in found[sku.product_id]] == [first.id, second.id]
    assert [image.position for image in found[sku.product_id]] == [1, 2]
    assert (small.width, middle.width, beyond.width) == (320, 1200, 800)
    assert images.widths_of(second) == [320, 640, 800]


async def test_a_refused_upload_and_an_unknown_product_store_nothing(rt: Runtime) -> None:
    sku = await given_sku(rt)
    with pytest.raises(ImageNotAccepted):
        async with rt.db.transaction() as session:
            await images.add_image(session, sku.product_id, b"<svg/>", actor="test")
    with pytest.raises(ProductNotFound):
        async with rt.db.transaction() as session:
            await images.add_image(session, 999_999, photo(), actor="test")

    assert await count(rt, ProductImage) == 0
    assert await count(rt, ProductImageFile) == 0


async def test_removing_an_image_removes_every_width(rt: Runtime) -> None:
    sku = await given_sku(rt)
    async with rt.db.transaction() as session:
        image = await images.add_image(session, sku.product_id, photo(), actor="test")
    async with rt.db.transaction() as session:
        await images.remove_image(session, image.id, actor="test")

    assert await count(rt, ProductImageFile) == 0
    with pytest.raises(ImageNotFound):
        async with rt.db.read() as session:
            await images.image_file(session, image.id, 320)
