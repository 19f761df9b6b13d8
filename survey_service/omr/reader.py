"""Reading one photographed or scanned page of a sheet printed to be read.

The steps follow what read simulated phone photos with no wrong automatic answer: find the four ArUco
markers, fit the homography from at least three of them and refuse the page when its corners disagree by
more than :data:`MAX_ERROR_MM`; straighten the page to :data:`PX_PER_MM`; decode the QR at its known place;
then for each bubble take the darkest colour channel (blue ballpoint counts as dark), compare the inside of
the ring with the paper just around it (which evens out gradients and shadows), and decide per question:
one mark and the rest clearly empty is accepted, nothing but empty bubbles is a blank, anything else (two
marks, a crossed-out mark, a light or partial mark) goes to the clerk. The pale grey option codes printed
inside the rings are the page's own reference: a photo so bright that they vanish has lost light marks
too, and is refused. Every score and the decision's margin are returned so a decision can be audited.

Pure: numbers and pixels in, a reading out; the services check the QR's signature and the ledger.
"""
from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from survey_service.omr import layout as L

#: Resolution of the straightened page.
PX_PER_MM = 5.0
CANVAS = (round(L.PAGE_W * PX_PER_MM), round(L.PAGE_H * PX_PER_MM))
#: Root-mean-square distance, on the page, between the detected marker corners and where the homography
#: puts them: above this the page is bent, cut or blurred too much to trust.
MAX_ERROR_MM = 0.5
#: Photos are searched for markers at most this large (the corners are then refined on the full image).
DETECT_SIDE = 2000
#: Fewest photo pixels per millimetre of paper (measured on the markers): the sheets are designed for
#: photos of 1,600 px and more; the smallest measured, 1,200 px photos of a page turned by 20° (2.3 px/mm),
#: still read right, and below those nothing is known, so the page is refused rather than half-read.
MIN_PX_PER_MM = 2.2
#: A bubble whose score is at most this is empty; a mark scores at least :data:`MARK_MIN`, or
#: :data:`CLEAN_MARK_MIN` when the paper around its ring is clean (see :data:`FAINT_MAX`), or
#: :data:`STROKE_MARK_MIN` when strokes leave its ring (see :data:`AROUND_MAX`): a cross or a tick, which
#: a stray dot (at most a tenth of the inside, so under 0.12 with the printed digit) cannot pass for.
BLANK_MAX = 0.12
MARK_MIN = 0.25
CLEAN_MARK_MIN = 0.2
STROKE_MARK_MIN = 0.15
#: Share of the paper around a ring even slightly darker (by 15 %) than the fitted paper, at most, for that
#: paper to count as clean: no stroke leaves the ring and no shadow edge crosses it, so a tick or a cross
#: kept inside the ring is a mark, while a stray dot (at most a tenth of the inside) stays far below.
FAINT_MAX = 0.05
#: Share of the paper around a ring slightly darker than the fitted paper, with no stroke there, from which
#: a shadow's edge crosses the bubble: the paper is then fitted on the lit side only, so the shaded inside
#: looks marked, and a mark must score :data:`SHADOW_MARK_MIN` (a fill, not a dot in the shade).
SHADOW_MIN = 0.1
SHADOW_MARK_MIN = 0.5
#: A shadow's edge darkens the paper around a ring a little over a wide arc, a pen's strokes a lot over a
#: narrow one: when the slightly darker share is more than this many times the stroke share, the darkness
#: is shade (its darkest band can pass for strokes), and the shadow's rule wins over the strokes' rule.
SHADE_RATIO = 4.0
#: Median score of a page's bubbles, at least: mostly empty rings whose printed grey digit scores 0.02–0.04
#: in every lighting the reader was measured in; below this half, the photo is so bright that the grey
#: digits (and light pencil marks, which are no darker) are washed out, and the page is refused.
DIGITS_MIN = 0.012
#: How far above the question's typical (median) bubble an empty bubble may score: the printed digits
#: make every empty bubble score alike, so a faint tick inside one ring stands out even below BLANK_MAX.
#: The limit is learnt from the page itself, :data:`RISE_SPREADS` times the spread of its bubbles about
#: their questions' medians (most bubbles are empty, so this is the empty rings' noise), kept between
#: :data:`BLANK_RISE_MIN` and :data:`BLANK_RISE`: a clean page lets a soft pencil tick through less easily.
BLANK_RISE = 0.06
BLANK_RISE_MIN = 0.04
RISE_SPREADS = 8.0
#: Share of the paper around a ring covered by strokes above which something was written across it (a
#: tick or a cross that barely enters the ring): such a bubble is not taken for empty.
AROUND_MAX = 0.03
#: Share of a writing box's area covered by ink above which there is something to type.
INK_MIN = 0.004
REVIEW = "review"
#: PDF pages are rasterised at this resolution (poppler's ``pdftoppm``).
PDF_DPI = 200
MAX_PDF_PAGES = 200

_DICTIONARY = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)


class PageRefused(Exception):
    """A page that cannot be read safely; ``str()`` tells the clerk why, in Vietnamese, and to retake it."""


def _detector() -> cv2.aruco.ArucoDetector:
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(_DICTIONARY, params)


_ARUCO = _detector()


def marker_pixels(marker: int) -> np.ndarray:
    """An ArUco marker one pixel per cell (6 × 6 with its black border), for printing."""
    return cv2.aruco.generateImageMarker(_DICTIONARY, marker, 6)


# --- input files -------------------------------------------------------------------------------------
def images_from_file(data: bytes) -> list[np.ndarray]:
    """The pages of an uploaded file: every page of a PDF (a scanner's), or one image (JPEG, PNG, TIFF…).

    :raises PageRefused: when the file is neither.
    """
    if data[:5] == b"%PDF-":
        return _pdf_pages(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if image is None:
        raise PageRefused("Tệp không phải ảnh (JPEG, PNG…) hay PDF đọc được.")
    return [image]


def _pdf_pages(data: bytes) -> list[np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.pdf"
        source.write_bytes(data)
        try:
            # Uncompressed PPM: PNG's compression took ten times as long as rendering the page.
            subprocess.run(["pdftoppm", "-r", str(PDF_DPI), "-l", str(MAX_PDF_PAGES), str(source),
                            str(Path(tmp) / "p")], check=True, capture_output=True, timeout=300)
        except FileNotFoundError:
            raise RuntimeError("pdftoppm (poppler-utils) is not installed") from None
        except subprocess.CalledProcessError:
            raise PageRefused("Tệp PDF hỏng hoặc không mở được.") from None
        pages = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p in sorted(Path(tmp).glob("p-*.ppm"),
                                                                     key=lambda p: int(p.stem[2:]))]
    if not pages:
        raise PageRefused("Tệp PDF không có trang nào.")
    return pages


# --- alignment ---------------------------------------------------------------------------------------
@dataclass
class AlignedPage:
    """A page straightened to :data:`CANVAS`, with what the QR holds and how well it fitted."""

    image: np.ndarray
    payload: str
    page: int
    markers: int
    error_mm: float


def _marker_corners_mm(marker: int) -> np.ndarray:
    x, y = L.marker_origin(marker % L.CORNERS)
    m = L.MARKER
    return np.array([[x, y], [x + m, y], [x + m, y + m], [x, y + m]], np.float32)


def align(image: np.ndarray) -> AlignedPage:
    """Find the markers, fit and check the homography, straighten the page and decode its QR.

    :raises PageRefused: fewer than three markers of one page, too large an alignment error, or no QR.
    """
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    scale = min(1.0, DETECT_SIDE / max(image.shape[:2]))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    corners, ids, _ = _ARUCO.detectMarkers(small)
    found: dict[int, dict[int, np.ndarray]] = {}
    for quad, marker in zip(corners, [] if ids is None else ids.ravel()):
        if marker < L.CORNERS * L.MAX_PAGES:
            found.setdefault(int(marker) // L.CORNERS + 1, {})[int(marker)] = quad.reshape(4, 2) / scale
    page, markers = max(found.items(), key=lambda kv: len(kv[1]), default=(0, {}))
    if len(markers) < 3:
        raise PageRefused(f"Chỉ thấy {len(markers)}/4 dấu vuông ở góc phiếu: hãy chụp lại cả trang, đủ bốn góc, "
                          "không bị che hay cắt.")
    sides = [np.linalg.norm(quad - np.roll(quad, 1, axis=0), axis=1).mean() for quad in markers.values()]
    if np.mean(sides) / L.MARKER < MIN_PX_PER_MM:
        raise PageRefused("Ảnh quá nhỏ so với tờ phiếu: hãy chụp lại gần hơn, trang phiếu chiếm gần hết khung hình, "
                          "ảnh từ 1.600 điểm ảnh trở lên.")
    if scale < 1:
        refined = np.concatenate(list(markers.values())).astype(np.float32).reshape(-1, 1, 2)
        window = max(2, round(1.5 / scale))
        cv2.cornerSubPix(gray, refined, (window, window), (-1, -1),
                         (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 20, 0.05))
        src = refined.reshape(-1, 2)
    else:
        src = np.concatenate(list(markers.values())).astype(np.float32)
    dst = np.concatenate([_marker_corners_mm(m) for m in markers])
    homography, _ = cv2.findHomography(src, dst, 0)
    if homography is None:
        raise PageRefused("Không căn được trang: hãy chụp lại, giữ máy song song với tờ phiếu.")
    fitted = cv2.perspectiveTransform(src.reshape(-1, 1, 2), homography).reshape(-1, 2)
    error = float(np.sqrt(np.mean(np.sum((fitted - dst) ** 2, axis=1))))
    if error > MAX_ERROR_MM:
        raise PageRefused(f"Trang bị cong, mờ hoặc méo (sai lệch {error:.1f} mm): hãy đặt phiếu phẳng và chụp lại.")
    to_canvas = np.diag([PX_PER_MM, PX_PER_MM, 1.0]) @ homography
    straight = cv2.warpPerspective(image, to_canvas, CANVAS, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
    payload = _decode_qr(straight) or _decode_qr(image, homography)
    if not payload:
        raise PageRefused("Không đọc được mã QR của trang: hãy chụp lại rõ nét, đủ sáng.")
    return AlignedPage(straight, payload, page, len(markers), error)


def _decode_qr(image: np.ndarray, homography: np.ndarray | None = None) -> str:
    """The QR's text from the straightened page, or (``homography`` given) from the original photo
    straightened again at twice the resolution, for a small or soft code."""
    pad = 5.0
    x0, y0, size = L.QR_X - pad, L.QR_Y - pad, L.QR_SIZE + 2 * pad
    if homography is None:
        crop = image[round(y0 * PX_PER_MM):round((y0 + size) * PX_PER_MM),
                     round(x0 * PX_PER_MM):round((x0 + size) * PX_PER_MM)]
    else:
        px = 2 * PX_PER_MM
        shift = np.array([[px, 0, -x0 * px], [0, px, -y0 * px], [0, 0, 1]])
        crop = cv2.warpPerspective(image, shift @ homography, (round(size * px),) * 2, flags=cv2.INTER_AREA)
    gray = crop.min(axis=2) if crop.ndim == 3 else crop
    detector = cv2.QRCodeDetector()
    text, _, _ = detector.detectAndDecode(gray)
    if not text:  # soft or unevenly lit: binarise against the local background
        binary = cv2.adaptiveThreshold(cv2.GaussianBlur(gray, (3, 3), 0), 255, cv2.ADAPTIVE_THRESH_MEAN_C,
                                       cv2.THRESH_BINARY, 2 * round(gray.shape[0] / 8) + 1, 10)
        text, _, _ = detector.detectAndDecode(binary)
    return text or ""


# --- marks -------------------------------------------------------------------------------------------
@dataclass
class ItemReading:
    """One question: the option decided (None for blank, :data:`REVIEW` for the clerk), every bubble's
    score, the margin of the decision (how far the scores are from the thresholds; negative = uncertain)
    and why it goes to review."""

    value: str | None
    scores: dict[str, float]
    margin: float
    reason: str = ""


@dataclass
class PageReading:
    page: int
    items: dict[str, ItemReading] = field(default_factory=dict)
    #: Free-text item → share of its box covered by ink; :data:`REVIEW` items have writing to type.
    texts: dict[str, float] = field(default_factory=dict)

    @property
    def review(self) -> list[str]:
        return [code for code, item in self.items.items() if item.value == REVIEW] + [
            code for code, ink in self.texts.items() if ink > INK_MIN]


def _offsets(inner: float, outer: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    distance = np.hypot(dx, dy) / PX_PER_MM
    keep = (distance >= inner) & (distance <= outer)
    return dy[keep], dx[keep]


#: How far (mm) a bubble is looked for around where the homography puts it: lens distortion and paper
#: that is not flat move the middle of the page by a millimetre or two while the corners fit.
SEARCH_MM = 1.6
_SEARCH = round(SEARCH_MM * PX_PER_MM)
_REACH = int(np.ceil((L.BUBBLE_R + 2.0) * PX_PER_MM))
_INSIDE = _offsets(0.0, L.BUBBLE_R - 0.7, _REACH)
_AROUND = _offsets(L.BUBBLE_R + 0.8, L.BUBBLE_R + 2.0, _REACH)
_PLANE_AROUND = np.stack([np.ones(_AROUND[0].size), _AROUND[1], _AROUND[0]], axis=1).astype(np.float32)
_PLANE_INSIDE = np.stack([np.ones(_INSIDE[0].size), _INSIDE[1], _INSIDE[0]], axis=1).astype(np.float32)


def _ring_template() -> np.ndarray:
    """Zero-mean kernel of a printed ring (positive on the ring, negative just inside and outside it), for
    finding rings in an inverted image whatever its brightness."""
    size = 2 * _REACH + 1
    dy, dx = np.mgrid[-_REACH:_REACH + 1, -_REACH:_REACH + 1]
    distance = np.hypot(dx, dy) / PX_PER_MM
    ring = (np.abs(distance - L.BUBBLE_R) <= 0.25).astype(np.float32)
    near = ((np.abs(distance - L.BUBBLE_R) >= 0.6) & (np.abs(distance - L.BUBBLE_R) <= 1.2)).astype(np.float32)
    kernel = ring / ring.sum() - near / near.sum()
    return kernel.reshape(size, size)


_RING = _ring_template()


def darkest_channel(image: np.ndarray) -> np.ndarray:
    return image.min(axis=2) if image.ndim == 3 else image


def bubble_centres(gray: np.ndarray, items: list[list[L.Bubble]]) -> list[tuple[int, int]]:
    """Each bubble's centre in the straightened page (px): where the layout puts it, moved by the offset
    (within :data:`SEARCH_MM`) at which the rings of its question's bubbles, taken together, fit best.
    A question's bubbles are mostly empty rings, so a filled one does not pull the fit."""
    inverted = 255.0 - gray.astype(np.float32)
    centres = []
    half = _REACH + _SEARCH
    for bubbles in items:
        fit = np.zeros((2 * _SEARCH + 1, 2 * _SEARCH + 1), np.float32)
        places = [(round(b.x * PX_PER_MM), round(b.y * PX_PER_MM)) for b in bubbles]
        for x, y in places:
            window = inverted[y - half:y + half + 1, x - half:x + half + 1]
            fit += cv2.matchTemplate(window, _RING, cv2.TM_CCORR)
        dy, dx = np.unravel_index(int(np.argmax(fit)), fit.shape)
        centres += [(x + dx - _SEARCH, y + dy - _SEARCH) for x, y in places]
    return centres


def bubble_scores(gray: np.ndarray, centres: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bubble, the mean darkness inside the ring (0 white, 1 black) relative to the paper, which is
    a plane fitted to the ring's surroundings (ink there left out), so a gradient or a soft shadow edge
    across the bubble is not taken for a mark; the share of those surroundings covered by strokes; and the
    share even slightly darker than the paper (faint strokes, shadow edges)."""
    if not centres:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    cx = np.array([c[0] for c in centres])[:, None]
    cy = np.array([c[1] for c in centres])[:, None]
    pixels = gray.astype(np.float32)
    around = pixels[cy + _AROUND[0], cx + _AROUND[1]]
    weights = np.ones_like(around)
    for _ in range(2):
        lhs = np.einsum("bn,ni,nj->bij", weights, _PLANE_AROUND, _PLANE_AROUND)
        rhs = np.einsum("bn,ni,bn->bi", weights, _PLANE_AROUND, around)
        plane = np.linalg.solve(lhs + np.eye(3) * 1e-3, rhs[..., None])[..., 0]
        expected = plane @ _PLANE_AROUND.T
        weights = (around > expected * 0.85).astype(np.float32) + 1e-3
    paper = np.maximum(plane @ _PLANE_INSIDE.T, 1.0)
    inside = pixels[cy + _INSIDE[0], cx + _INSIDE[1]]
    strokes = (around < expected * 0.7).mean(axis=1)
    faint = (around < expected * 0.85).mean(axis=1)
    return np.clip(1.0 - inside / paper, 0.0, 1.0).mean(axis=1), strokes, faint


def decide(codes: list[str], scores: list[float], strokes: list[float] | None = None,
           faint: list[float] | None = None, rise: float = BLANK_RISE) -> ItemReading:
    """One question's decision from its bubbles' scores and the strokes around them (see the module's
    rules): an empty-looking bubble with strokes around it is not empty; a mark on clean paper, or one whose
    strokes leave the ring, may be lighter, one across a shadow's edge must be darker; an empty bubble
    scores at most ``rise`` above the question's median."""
    order = sorted(range(len(codes)), key=lambda i: -scores[i])
    first = order[0]
    if faint and faint[first] >= SHADOW_MIN and not (strokes and strokes[first] * SHADE_RATIO >= faint[first]):
        mark_min = SHADOW_MARK_MIN
    elif strokes and strokes[first] > AROUND_MAX:
        mark_min = STROKE_MARK_MIN
    elif faint and faint[first] <= FAINT_MAX:
        mark_min = CLEAN_MARK_MIN
    else:
        mark_min = MARK_MIN
    top = scores[order[0]]
    second = scores[order[1]] if len(order) > 1 else 0.0
    typical = float(np.median(scores))
    by_code = {c: round(float(s), 4) for c, s in zip(codes, scores)}
    crossed = [i for i in order[1:] if strokes and strokes[i] > AROUND_MAX]
    if top <= min(BLANK_MAX, typical + rise) and not (strokes and strokes[order[0]] > AROUND_MAX) \
            and not crossed:
        return ItemReading(None, by_code, round(min(BLANK_MAX - top, typical + rise - top), 4))
    margin = round(min(top - mark_min, BLANK_MAX - second, typical + rise - second), 4)
    if margin >= 0 and not crossed:
        return ItemReading(codes[order[0]], by_code, margin)
    if crossed and margin >= 0:
        return ItemReading(REVIEW, by_code, -round(max(strokes[i] for i in crossed), 4),
                           "có nét bút quanh một ô khác")
    if top <= BLANK_MAX:
        return ItemReading(REVIEW, by_code, margin, "dấu rất nhỏ hoặc nét bút quanh ô (dấu ✓ hoặc ✗?)")
    if mark_min == SHADOW_MARK_MIN and top < mark_min:
        return ItemReading(REVIEW, by_code, margin, "bóng tối cắt ngang ô: dấu có thể chỉ là bóng")
    if second >= MARK_MIN:
        reason = "hai ô được tô (hoặc một ô đã gạch bỏ)"
    elif second > BLANK_MAX:
        reason = "có dấu ở hơn một ô"
    else:
        reason = "dấu mờ hoặc không tô kín"
    return ItemReading(REVIEW, by_code, margin, reason)


def blank_rise(scores: np.ndarray, questions: list[slice]) -> float:
    """The page's limit on how far above its question's median an empty bubble may score (see
    :data:`BLANK_RISE`), from the median absolute deviation of every bubble from its question's median."""
    if not questions:
        return BLANK_RISE
    deviations = np.concatenate([scores[q] - np.median(scores[q]) for q in questions])
    spread = 1.4826 * float(np.median(np.abs(deviations - np.median(deviations))))
    return min(BLANK_RISE, max(BLANK_RISE_MIN, RISE_SPREADS * spread))


def ink_share(gray: np.ndarray, box: L.TextBox) -> float:
    """Share of a writing box (inside a 1.5 mm inset) darker than the paper around each point by a third."""
    inset = 1.5
    y0, y1 = round((box.y + inset) * PX_PER_MM), round((box.y + box.h - inset) * PX_PER_MM)
    x0, x1 = round((box.x + inset) * PX_PER_MM), round((box.x + box.w - inset) * PX_PER_MM)
    region = gray[y0:y1, x0:x1].astype(np.float32)
    paper = cv2.blur(cv2.dilate(region, np.ones((15, 15), np.uint8)), (9, 9))
    return float(np.mean(region < paper * 0.66))


def read_marks(aligned: AlignedPage, page: L.PageLayout) -> PageReading:
    """Decide every question of a straightened page with ``page``'s layout.

    :raises PageRefused: the photo is too bright to see light marks (see :data:`DIGITS_MIN`).
    """
    gray = darkest_channel(aligned.image)
    reading = PageReading(page.number)
    items = page.items()
    measured = bubble_scores(gray, bubble_centres(gray, list(items.values())))
    if measured[0].size and np.median(measured[0]) < DIGITS_MIN:
        raise PageRefused("Ảnh quá sáng, các chữ số in mờ trong ô đã mất (dấu bút chì nhạt cũng có thể mất): "
                          "hãy chụp lại, tránh đèn chiếu thẳng hay nắng gắt.")
    spans, at = [], 0
    for bubbles in items.values():
        spans.append(slice(at, at + len(bubbles)))
        at += len(bubbles)
    rise = blank_rise(measured[0], spans)
    scores, strokes, faint = (a.tolist() for a in measured)
    for code, bubbles, span in zip(items, items.values(), spans):
        reading.items[code] = decide([b.code for b in bubbles], scores[span], strokes[span], faint[span], rise)
    for box in page.boxes:
        reading.texts[box.item] = round(ink_share(gray, box), 5)
    return reading


def crop(aligned: AlignedPage, top_mm: float, bottom_mm: float, quality: int = 80) -> bytes:
    """A band of the straightened page as JPEG: what the clerk looks at to confirm a question."""
    y0 = max(0, round(top_mm * PX_PER_MM))
    y1 = min(CANVAS[1], round(bottom_mm * PX_PER_MM))
    ok, data = cv2.imencode(".jpg", aligned.image[y0:y1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes()


def encode(image: np.ndarray, quality: int = 80) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes()
