"""What every printed document shares: the embedded Vietnamese font, NFC text and sharp QR codes.

DejaVu Sans comes from matplotlib's bundled copy (a dependency already), so no system font package is
needed; reportlab's standard fonts cannot show Vietnamese. Text is NFC-normalised before drawing because
reportlab does no shaping: decomposed (NFD) accents would be drawn on top of each other.
"""
from __future__ import annotations

import threading
import unicodedata
from pathlib import Path

import matplotlib
import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

FONT, FONT_BOLD = "DejaVuSans", "DejaVuSans-Bold"
_fonts_lock = threading.Lock()
_fonts_ready = False


def register_fonts() -> None:
    """Register DejaVu Sans once per process (reportlab's registry is global)."""
    global _fonts_ready
    with _fonts_lock:
        if _fonts_ready:
            return
        folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont(FONT_BOLD, str(folder / "DejaVuSans-Bold.ttf")))
        _fonts_ready = True


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text or "")


def qr_image(data: str) -> ImageReader:
    """A QR code (error correction M, 4-module quiet zone), one pixel per module.

    The PDF scales the image up without interpolation, so the modules stay sharp at any resolution and the
    image costs a few hundred bytes. The mask pattern is fixed: searching for the best one costs more than
    the rest of a page, and every decoder reads any of the eight.
    """
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, box_size=1, mask_pattern=2)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    img = Image.frombytes("L", (n, n), bytes(0 if dark else 255 for row in matrix for dark in row))
    return ImageReader(img)
