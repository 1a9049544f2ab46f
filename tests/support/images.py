"""Pictures for tests, made with Pillow: an operator's photo (with EXIF) and files that are not accepted."""

import io

from PIL import Image

GPS_TAG = 0x8825  # GPSInfo: where a phone photo was taken, which a buyer must never receive
MAKE_TAG = 0x010F


def photo(width: int = 1600, height: int = 1200, *, kind: str = "JPEG", exif: bool = True) -> bytes:
    """A picture as a phone saves it; with `exif` it carries the camera make and a GPS position."""
    picture = Image.new("RGB", (width, height), (200, 80, 40))
    out = io.BytesIO()
    if exif and kind == "JPEG":
        tags = Image.Exif()
        tags[MAKE_TAG] = "PhoneCam"
        tags[GPS_TAG] = {1: "N", 2: (31.0, 14.0, 0.0), 3: "E", 4: (121.0, 28.0, 0.0)}
        picture.save(out, kind, exif=tags)
    else:
        picture.save(out, kind)
    return out.getvalue()


def transparent_png(width: int = 400, height: int = 300) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 0, 0, 0)).save(out, "PNG")
    return out.getvalue()


def exif_of(data: bytes) -> dict[int, object]:
    with Image.open(io.BytesIO(data)) as picture:
        return dict(picture.getexif())


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as picture:
        return picture.size
