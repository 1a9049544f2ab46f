"""`kaquan product create/set` with the shop's page fields and `kaquan catalog image add/remove`."""

from pathlib import Path

from tests.support.cli import Kaquan
from tests.support.images import photo


def test_a_product_gets_its_page_fields_and_a_picture(kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan.ok("migrate")
    created = kaquan.ok("product", "create", "--name", "星河视频 VIP", "--kind", "membership", "--category", "影音会员")
    updated = kaquan.ok("product", "set", "1", "--usage", "打开 App 输入卡密", "--validity", "一年", "--featured")
    picture = tmp_path / "cover.jpg"
    picture.write_bytes(photo())
    added = kaquan.ok("catalog", "image", "add", "1", str(picture))
    state = kaquan.state()

    assert "product 1 created" in created
    assert "product 1 updated" in updated
    assert "image 1 added to product 1" in added
    assert state["catalog_product_images"] == 1 and state["catalog_product_image_files"] == 3


def test_a_file_that_is_not_a_picture_is_refused_and_changes_nothing(kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan.ok("migrate")
    kaquan.ok("product", "create", "--name", "礼品卡", "--kind", "gift_card")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")

    refused = kaquan.refused("catalog", "image", "add", "1", str(notes))
    unknown = kaquan.refused("catalog", "image", "add", "7", str(tmp_path / "missing.jpg"), exit_code=2)
    no_product = kaquan.refused("product", "set", "9", "--featured")

    assert "image_not_accepted" in refused
    assert "missing.jpg" in unknown
    assert "product_not_found" in no_product


def test_a_picture_can_be_removed(kaquan: Kaquan, tmp_path: Path) -> None:
    kaquan.ok("migrate")
    kaquan.ok("product", "create", "--name", "云盘会员", "--kind", "membership")
    picture = tmp_path / "cover.png"
    picture.write_bytes(photo(kind="PNG", exif=False))
    kaquan.ok("catalog", "image", "add", "1", str(picture))

    removed = kaquan.ok("catalog", "image", "remove", "1")
    again = kaquan.refused("catalog", "image", "remove", "1")

    assert "image 1 removed" in removed and "image_not_found" in again
    assert kaquan.state()["catalog_product_image_files"] == 0
