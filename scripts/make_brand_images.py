"""Draw the project's icon and logo (Home Assistant brand images, the app's icon and logo).

Simple original artwork: a meter dial with a lightning bolt on a blue rounded square, and
the icon beside the name for the logo. Needs Pillow (Home Assistant's venv has it):

    .venv-ha-2026.11/bin/python scripts/make_brand_images.py

Writes custom_components/countis/brand/{icon,icon@2x,logo,logo@2x}.png and
addon/{icon,logo}.png. Deterministic: running it again gives the same pictures.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
BLUE = (30, 111, 217, 255)
WHITE = (255, 255, 255, 255)
AMBER = (255, 193, 7, 255)
INK = (33, 43, 54, 255)
CANVAS = 1024  # drawn large, scaled down: smooth edges without an anti-aliasing pass


def icon(size: int) -> Image.Image:
    """The square icon at ``size`` pixels."""
    image = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((32, 32, CANVAS - 32, CANVAS - 32), radius=200, fill=BLUE)
    centre, radius = CANVAS / 2, 330
    box = (centre - radius, centre - radius + 60, centre + radius, centre + radius + 60)
    draw.arc(box, start=135, end=405, fill=WHITE, width=64)
    for step in range(9):  # the scale's dots, from 135 to 405 degrees
        angle = math.radians(135 + step * 270 / 8)
        x = centre + (radius - 90) * math.cos(angle)
        y = centre + 60 + (radius - 90) * math.sin(angle)
        draw.ellipse((x - 22, y - 22, x + 22, y + 22), fill=WHITE)
    bolt = [(560, 270), (380, 560), (500, 560), (440, 790), (650, 470), (525, 470), (600, 270)]
    draw.polygon(bolt, fill=AMBER)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def logo(height: int) -> Image.Image:
    """The icon and the name, ``height`` pixels high, on a transparent background."""
    scale = 4
    tall = height * scale
    font = ImageFont.load_default(size=int(tall * 0.46))
    text = "COUNTIS"
    width = int(tall * 1.15 + font.getlength(text))
    image = Image.new("RGBA", (width, tall), (0, 0, 0, 0))
    image.paste(icon(tall), (0, 0))
    draw = ImageDraw.Draw(image)
    draw.text((tall * 1.12, tall / 2), text, font=font, fill=INK, anchor="lm")
    return image.resize((width // scale, height), Image.Resampling.LANCZOS)


def main() -> None:
    """Write every image."""
    brand = ROOT / "custom_components" / "countis" / "brand"
    brand.mkdir(exist_ok=True)
    icon(256).save(brand / "icon.png", optimize=True)
    icon(512).save(brand / "icon@2x.png", optimize=True)
    logo(128).save(brand / "logo.png", optimize=True)
    logo(256).save(brand / "logo@2x.png", optimize=True)
    icon(128).save(ROOT / "addon" / "icon.png", optimize=True)
    logo(80).save(ROOT / "addon" / "logo.png", optimize=True)  # the app store: about 250 x 100


if __name__ == "__main__":
    main()
