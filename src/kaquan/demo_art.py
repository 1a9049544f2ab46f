"""Product pictures for the demo shop, drawn with Pillow at demo time (no downloaded or bundled assets).

Each is a two-colour gradient card with a simple emblem (play button, gamepad, gift, note, book, cloud, ticket)
so the shop looks like one; no text, so the pictures suit both languages.
"""

import io
from collections.abc import Callable

from PIL import Image, ImageDraw

WIDTH, HEIGHT = 800, 600
Colour = tuple[int, int, int]
Emblem = Callable[[ImageDraw.ImageDraw], None]
WHITE = (255, 255, 255)


def _gradient(top: Colour, bottom: Colour) -> Image.Image:
    picture = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(picture)
    for y in range(HEIGHT):
        share = y / (HEIGHT - 1)
        draw.line(
            [(0, y), (WIDTH, y)], fill=tuple(round(a + (b - a) * share) for a, b in zip(top, bottom, strict=True))
        )
    return picture


def _play(draw: ImageDraw.ImageDraw) -> None:
    draw.rounded_rectangle((230, 160, 570, 400), radius=36, outline=WHITE, width=18)
    draw.polygon([(360, 215), (360, 345), (465, 280)], fill=WHITE)
    draw.rectangle((330, 420, 470, 436), fill=WHITE)


def _gamepad(draw: ImageDraw.ImageDraw) -> None:
    draw.rounded_rectangle((200, 200, 600, 400), radius=100, fill=WHITE)
    draw.rectangle((265, 285, 345, 315), fill=(120, 60, 200))
    draw.rectangle((290, 260, 320, 340), fill=(120, 60, 200))
    for x, y in ((480, 270), (530, 310)):
        draw.ellipse((x - 20, y - 20, x + 20, y + 20), fill=(120, 60, 200))


def _gift(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle((250, 250, 550, 450), fill=WHITE)
    draw.rectangle((230, 200, 570, 260), fill=WHITE)
    draw.rectangle((385, 200, 415, 450), fill=(214, 51, 108))
    draw.ellipse((310, 130, 400, 210), outline=WHITE, width=16)
    draw.ellipse((400, 130, 490, 210), outline=WHITE, width=16)


def _note(draw: ImageDraw.ImageDraw) -> None:
    draw.rectangle((340, 170, 360, 400), fill=WHITE)
    draw.rectangle((500, 140, 520, 370), fill=WHITE)
    draw.polygon([(340, 170), (520, 140), (520, 190), (340, 220)], fill=WHITE)
    draw.ellipse((270, 370, 365, 440), fill=WHITE)
    draw.ellipse((430, 340, 525, 410), fill=WHITE)


def _book(draw: ImageDraw.ImageDraw) -> None:
    draw.polygon([(200, 180), (395, 210), (395, 430), (200, 400)], fill=WHITE)
    draw.polygon([(405, 210), (600, 180), (600, 400), (405, 430)], fill=WHITE)
    for offset in range(0, 120, 30):
        draw.line([(230, 230 + offset), (365, 250 + offset)], fill=(16, 120, 110), width=8)


def _cloud(draw: ImageDraw.ImageDraw) -> None:
    for box in ((240, 250, 400, 410), (330, 180, 520, 370), (450, 260, 580, 390)):
        draw.ellipse(box, fill=WHITE)
    draw.rectangle((320, 330, 515, 410), fill=WHITE)
    draw.polygon([(400, 250), (360, 310), (390, 310), (380, 360), (430, 290), (400, 290)], fill=(37, 99, 235))


def _ticket(draw: ImageDraw.ImageDraw) -> None:
    draw.rounded_rectangle((190, 200, 610, 400), radius=24, fill=WHITE)
    for y in (300,):
        draw.ellipse((165, y - 30, 225, y + 30), fill=(245, 120, 40))
        draw.ellipse((575, y - 30, 635, y + 30), fill=(245, 120, 40))
    for y in range(215, 390, 24):
        draw.rectangle((445, y, 455, y + 12), fill=(245, 120, 40))
    draw.ellipse((270, 250, 330, 310), outline=(245, 120, 40), width=10)
    draw.ellipse((340, 300, 400, 360), outline=(245, 120, 40), width=10)
    draw.line([(390, 250), (280, 360)], fill=(245, 120, 40), width=10)


ART: dict[str, tuple[Colour, Colour, Emblem]] = {
    "video": ((255, 94, 58), (214, 40, 90), _play),
    "game": ((124, 58, 237), (59, 130, 246), _gamepad),
    "gift": ((244, 63, 94), (251, 146, 60), _gift),
    "music": ((16, 185, 129), (6, 95, 70), _note),
    "book": ((20, 184, 166), (14, 116, 144), _book),
    "cloud": ((56, 189, 248), (37, 99, 235), _cloud),
    "food": ((251, 191, 36), (245, 120, 40), _ticket),
}


def picture(kind: str) -> bytes:
    """A PNG of the demo picture for `kind` (a key of ART)."""
    top, bottom, emblem = ART[kind]
    image = _gradient(top, bottom)
    emblem(ImageDraw.Draw(image))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
