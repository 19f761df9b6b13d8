"""A photo simulator for measuring the reader: fill a rendered sheet the ways people do, photograph it the
ways phones and scanners do, and keep what was meant so every automatic answer can be checked.

Ways of filling (:data:`STYLES`): a full fill, a scribble, light pencil, a tick, a cross, a blank, a stray
dot, a double mark and a crossed-out mark with the intended one filled beside it; in black or blue
ballpoint or pencil. Ways of photographing (:data:`CONDITIONS`): a flatbed scan, and phone photos with
perspective, rotation up to ±20°, a lighting gradient, a shadow, lens distortion, blur, noise and JPEG
quality 40–90 at 1,600 to 3,000 px; and photos that miss half the page, which must be refused.

:data:`HELD_OUT` are conditions the reader was not tuned on, to check that it holds beyond them: other
pens (red, green, black gel, soft pencil with its graphite sheen), a wide-angle lens's barrel or
pincushion distortion, motion blur, 1,200 px photos, a patterned dark table, a curved and crumpled page,
and overexposure. Everything is drawn from one ``random.Random`` so a seed gives the same pages.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import cv2
import numpy as np

from survey_service.omr import layout as L
from survey_service.omr.reader import REVIEW

#: Style → share of questions filled so (they sum to 1).
STYLES = {"full": 0.52, "scribbled": 0.10, "cross": 0.08, "tick": 0.04, "light pencil": 0.05, "blank": 0.11,
          "stray dot": 0.06, "double mark": 0.02, "crossed-out": 0.02}
#: The style of an answer in a block whose "not rated" bubble is filled too (:func:`fill_delegate`).
CONTRADICTED = "not rated and marked"


@dataclass(frozen=True)
class Pen:
    colour: tuple[int, int, int]
    #: Shine of graphite or wet gel ink: patches of the stroke lifted up to this share of the way to white.
    sheen: float = 0.0
    #: Paper showing through the strokes: spread of the stroke's tone from pixel to pixel.
    grain: float = 0.0


#: Pens (colours BGR). The reader was tuned on the first three (:data:`TUNED_PENS`).
PENS = {"black": Pen((40, 38, 36)), "blue": Pen((165, 70, 25)), "pencil": Pen((105, 105, 105)),
        "red": Pen((50, 45, 200)), "green": Pen((80, 140, 35)), "black gel": Pen((18, 18, 20), sheen=0.3),
        "soft pencil": Pen((150, 150, 150), sheen=0.4, grain=25.0)}
TUNED_PENS = ("black", "blue", "pencil")


@dataclass(frozen=True)
class Condition:
    name: str
    scan: bool = False
    side: tuple[int, int] = (1600, 3000)
    rotation: float = 20.0
    tilt: float = 0.06
    gradient: tuple[float, float] = (0.7, 1.0)
    shadow: float = 0.0
    distortion: float = 0.0
    blur: tuple[float, float] = (0.3, 1.0)
    noise: tuple[float, float] = (1.0, 4.0)
    quality: tuple[int, int] = (75, 90)
    #: Photos that show only part of the page (must be refused).
    partial: bool = False
    pens: tuple[str, ...] = TUNED_PENS
    #: Length (photo pixels) of a straight motion blur.
    motion: tuple[float, float] | None = None
    #: Light multiplied by this before the sensor clips it (overexposure above 1).
    exposure: tuple[float, float] | None = None
    #: A dark table with a printed pattern (squares, stripes, dots) around the page, not a plain one.
    patterned_table: bool = False
    #: Height (mm) of the page's smooth bends and creases when it is not lying flat.
    warp: tuple[float, float] | None = None


CONDITIONS = [
    Condition("scan 200 dpi", scan=True, rotation=1.5, tilt=0, gradient=(0.95, 1.0), blur=(0.2, 0.6),
              noise=(0.5, 2.0), quality=(85, 95)),
    Condition("photo 3000 px", side=(2600, 3000), gradient=(0.6, 1.0), shadow=0.3, distortion=0.02),
    Condition("photo 1600 px, harsh", side=(1600, 1800), blur=(0.8, 2.0), noise=(3.0, 8.0), quality=(40, 60),
              gradient=(0.55, 1.0), shadow=0.3),
    Condition("photo 2000 px, dark, shadow", side=(1900, 2200), gradient=(0.3, 0.6), shadow=1.0,
              quality=(60, 85), distortion=0.02),
    Condition("photo missing half the page", partial=True),
]
_PHONE = dict(side=(1900, 2600), gradient=(0.6, 1.0), shadow=0.3, distortion=0.02)
HELD_OUT = [
    Condition("red ballpoint", pens=("red",), **_PHONE),
    Condition("green ballpoint", pens=("green",), **_PHONE),
    Condition("black gel pen", pens=("black gel",), **_PHONE),
    Condition("soft pencil, sheen", pens=("soft pencil",), **_PHONE),
    Condition("wide-angle lens", side=(1900, 2600), gradient=(0.6, 1.0), shadow=0.3, distortion=0.1),
    Condition("motion blur", side=(1900, 2600), gradient=(0.6, 1.0), shadow=0.3, motion=(4.0, 14.0),
              blur=(0.3, 0.6)),
    Condition("photo 1200 px", side=(1150, 1250), gradient=(0.6, 1.0), shadow=0.3, quality=(60, 90)),
    Condition("patterned dark table", patterned_table=True, **_PHONE),
    Condition("curved, crumpled page", warp=(1.0, 4.0), **_PHONE),
    Condition("overexposed", exposure=(1.4, 2.2), side=(1900, 2600), gradient=(0.7, 1.0)),
]


def _mm(px_per_mm: float, value: float) -> int:
    return round(value * px_per_mm)


def fill(page: np.ndarray, layout: L.PageLayout, rng: random.Random, px_per_mm: float,
         pens: tuple[str, ...] = TUNED_PENS) -> tuple[np.ndarray, dict[str, str | None], dict[str, str]]:
    """The page filled in with one of ``pens``: (image, item → what was meant, item → style). What was
    meant is an option code, None for a blank, or :data:`REVIEW` for a double mark, which no machine may
    decide."""
    ink = np.full_like(page, 255)
    truth: dict[str, str | None] = {}
    styles: dict[str, str] = {}
    pen = PENS[rng.choice(list(pens))]
    for item, bubbles in layout.items().items():
        style = rng.choices(list(STYLES), weights=list(STYLES.values()))[0]
        chosen = rng.randrange(len(bubbles))
        styles[item] = style
        truth[item] = bubbles[chosen].code
        others = [b for i, b in enumerate(bubbles) if i != chosen]
        if style == "blank":
            truth[item] = None
        elif style == "stray dot":
            truth[item] = None
            spot = rng.choice(bubbles)
            _dot(ink, spot, rng, px_per_mm, pen.colour)
        elif style == "double mark":
            truth[item] = REVIEW
            _full(ink, bubbles[chosen], rng, px_per_mm, pen.colour)
            _full(ink, rng.choice(others), rng, px_per_mm, pen.colour)
        elif style == "crossed-out":
            wrong = rng.choice(others)
            _full(ink, wrong, rng, px_per_mm, pen.colour)
            _cross(ink, wrong, rng, px_per_mm, pen.colour, reach=1.5)
            _full(ink, bubbles[chosen], rng, px_per_mm, pen.colour)
        else:
            draw = {"full": _full, "scribbled": _scribble, "cross": _cross, "tick": _tick,
                    "light pencil": _light}[style]
            draw(ink, bubbles[chosen], rng, px_per_mm, pen.colour)
    for box in layout.boxes:
        if rng.random() < 0.3:
            truth[box.item] = "text"
            _handwriting(ink, box, rng, px_per_mm, pen.colour)
        else:
            truth[box.item] = None
    if pen.sheen or pen.grain:
        ink = _texture(ink, pen, rng)
    return np.minimum(page, ink), truth, styles


def _texture(ink: np.ndarray, pen: Pen, rng: random.Random) -> np.ndarray:
    """Grain and sheen on every stroke: paper showing through, and soft patches where graphite or wet gel
    reflects the light back."""
    noise = np.random.default_rng(rng.randrange(2**32))
    h, w = ink.shape[:2]
    coarse = noise.random((max(2, h // 40), max(2, w // 40))).astype(np.float32)
    shine = np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC) * 2 - 1, 0, 1) * pen.sheen
    stroke = ink.astype(np.float32)
    lifted = stroke + (255 - stroke) * shine[..., None] + noise.normal(0, pen.grain or 1e-6, (h, w, 1))
    drawn = (ink < 255).any(axis=2, keepdims=True)
    return np.where(drawn, np.clip(lifted, 0, 254), 255).astype(np.uint8)


def _centre(bubble: L.Bubble, rng: random.Random, ppm: float, jitter: float = 0.3) -> tuple[float, float]:
    return ((bubble.x + rng.uniform(-jitter, jitter)) * ppm, (bubble.y + rng.uniform(-jitter, jitter)) * ppm)


def _line(ink, p, q, colour, width: int) -> None:
    cv2.line(ink, (round(p[0] * 16), round(p[1] * 16)), (round(q[0] * 16), round(q[1] * 16)), colour,
             max(1, width), cv2.LINE_AA, shift=4)


def _full(ink, bubble, rng, ppm, colour) -> None:
    x, y = _centre(bubble, rng, ppm)
    radius = L.BUBBLE_R * rng.uniform(0.85, 1.1) * ppm
    axes = (round(radius * rng.uniform(0.9, 1.1)), round(radius * rng.uniform(0.9, 1.1)))
    cv2.ellipse(ink, (round(x), round(y)), axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)


def _scribble(ink, bubble, rng, ppm, colour) -> None:
    x, y = _centre(bubble, rng, ppm)
    r = L.BUBBLE_R * ppm
    points = [(x + rng.uniform(-r, r) * 0.9, y + (i / 9 - 0.5) * 1.7 * r) for i in range(10)]
    for p, q in zip(points, points[1:]):
        _line(ink, (x - r * 0.85, p[1]), (x + r * 0.85, q[1]), colour, _mm(ppm, rng.uniform(0.5, 0.8)))


def _cross(ink, bubble, rng, ppm, colour, reach: float = 1.0) -> None:
    x, y = _centre(bubble, rng, ppm)
    r = L.BUBBLE_R * ppm * reach * rng.uniform(0.9, 1.2)
    width = _mm(ppm, rng.uniform(0.4, 0.7))
    _line(ink, (x - r, y - r), (x + r, y + r), colour, width)
    _line(ink, (x - r, y + r), (x + r, y - r), colour, width)


def _tick(ink, bubble, rng, ppm, colour) -> None:
    x, y = _centre(bubble, rng, ppm)
    r = L.BUBBLE_R * ppm * rng.uniform(0.9, 1.3)
    width = _mm(ppm, rng.uniform(0.4, 0.7))
    low = (x - r * 0.2, y + r * 0.8)
    _line(ink, (x - r * 0.9, y), low, colour, width)
    _line(ink, low, (x + r * 1.1, y - r * 1.1), colour, width)


def _light(ink, bubble, rng, ppm, colour) -> None:
    """Light pencil: a grey fill with paper showing through the strokes."""
    layer = np.full_like(ink, 255)
    _full(layer, bubble, rng, ppm, (0, 0, 0))
    mask = layer[..., 0] < 128
    tone = rng.uniform(150, 185)
    grain = np.clip(np.random.default_rng(rng.randrange(2**32)).normal(tone, 25, mask.sum()), 0, 255)
    target = ink[mask]
    ink[mask] = np.minimum(target, grain[:, None].astype(np.uint8))


def _dot(ink, bubble, rng, ppm, colour) -> None:
    x = (bubble.x + rng.uniform(-L.BUBBLE_R * 1.3, L.BUBBLE_R * 1.3)) * ppm
    y = (bubble.y + rng.uniform(-L.BUBBLE_R * 1.3, L.BUBBLE_R * 1.3)) * ppm
    cv2.circle(ink, (round(x), round(y)), max(1, _mm(ppm, rng.uniform(0.3, 0.6))), colour, -1, cv2.LINE_AA)


def _handwriting(ink, box, rng, ppm, colour) -> None:
    x = (box.x + 4) * ppm
    for line in range(rng.randint(1, 2)):
        y = (box.y + 7 + line * 7) * ppm
        for _ in range(rng.randint(10, 30)):
            w = rng.uniform(1.5, 3.5) * ppm
            _line(ink, (x, y), (x + w / 2, y - rng.uniform(1.5, 3) * ppm), colour, _mm(ppm, 0.4))
            _line(ink, (x + w / 2, y - 2 * ppm), (x + w, y), colour, _mm(ppm, 0.4))
            x += w + rng.uniform(0.5, 2) * ppm
        x = (box.x + 4) * ppm


def fill_delegate(page: np.ndarray, layout: L.PageLayout, rng: random.Random, px_per_mm: float,
                  pens: tuple[str, ...] = TUNED_PENS, *, rated: float = 0.3, skip_marked: float = 0.8,
                  both: float = 0.03) -> tuple[np.ndarray, dict[str, str | None], dict[str, str]]:
    """An HĐ-CT page as a delegate fills it (same return as :func:`fill`): each agency is rated with
    probability ``rated``, its questions filled as :func:`fill` does; an agency not rated has its "not
    rated" bubble filled (probability ``skip_marked``) or is simply left empty. With probability ``both`` a
    rated agency has its "not rated" bubble filled too: the delegate said two things, so what is marked
    in that block is meant for the clerk (:data:`REVIEW`)."""
    items = layout.items()
    blocks: dict[str, list[str]] = {}
    for key in items:
        blocks.setdefault(key.rsplit(":", 1)[0], []).append(key)
    is_rated = {row: rng.random() < rated for row in blocks}
    answered = L.PageLayout(layout.number, boxes=layout.boxes, bubbles=[
        b for b in layout.bubbles if is_rated[b.item.rsplit(":", 1)[0]] and not b.item.endswith(":" + L.SKIP)])
    filled, truth, styles = fill(page, answered, rng, px_per_mm, pens)
    ink = np.full_like(page, 255)
    pen = PENS[rng.choice(list(pens))].colour
    for row, keys in blocks.items():
        skip = L.matrix_key(row, L.SKIP)
        marked = rng.random() < (both if is_rated[row] else skip_marked)
        for key in keys:
            truth.setdefault(key, None)
            styles.setdefault(key, "blank")
        if marked:
            _full(ink, items[skip][0], rng, px_per_mm, pen)
            truth[skip], styles[skip] = L.SKIP_CODE, "full"
            for key in keys:
                if key != skip and truth[key] is not None:
                    truth[key], styles[key] = REVIEW, CONTRADICTED
    return np.minimum(filled, ink), truth, styles


def photograph(page: np.ndarray, rng: random.Random, condition: Condition) -> bytes:
    """A JPEG of the filled page as ``condition`` takes it."""
    h, w = page.shape[:2]
    if condition.scan:
        angle = rng.uniform(-condition.rotation, condition.rotation)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        m[:, 2] += (rng.uniform(-20, 20), rng.uniform(-20, 20))
        shot = cv2.warpAffine(page, m, (w, h), borderValue=(250, 250, 250))
    else:
        if condition.warp:
            page = _bend(page, rng, condition.warp)
        shot = _camera(page, rng, condition)
    sh, sw = shot.shape[:2]
    # Light varies smoothly: computed on a small grid and scaled up.
    small = (max(8, sw // 8), max(8, sh // 8))
    yy, xx = np.mgrid[0:small[1], 0:small[0]].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xx / small[0] - 0.5) * math.cos(direction) + (yy / small[1] - 0.5) * math.sin(direction)
    start = rng.uniform(*condition.gradient)
    light = start + (1 - start) * (ramp - ramp.min()) / max(1e-6, float(np.ptp(ramp)))
    if rng.random() < condition.shadow:
        light *= _shadow(small[1], small[0], rng)
    tint = (rng.uniform(0.85, 1.0), rng.uniform(0.92, 1.0), 1.0)
    light = cv2.merge([np.clip(light * t * 255, 0, 255).astype(np.uint8) for t in tint])
    lit = cv2.multiply(shot, cv2.resize(light, (sw, sh), interpolation=cv2.INTER_LINEAR), scale=1 / 255)
    lit = cv2.GaussianBlur(lit, (0, 0), rng.uniform(*condition.blur))
    if condition.motion:
        lit = cv2.filter2D(lit, -1, _streak(rng.uniform(*condition.motion), rng.uniform(0, 180)))
    if condition.exposure:
        lit = cv2.convertScaleAbs(lit, alpha=rng.uniform(*condition.exposure))
    noise = np.empty(lit.shape, np.int16)
    cv2.randn(noise, 0, rng.uniform(*condition.noise))
    shot = cv2.add(lit, noise, dtype=cv2.CV_8U)
    ok, data = cv2.imencode(".jpg", shot, [cv2.IMWRITE_JPEG_QUALITY, rng.randint(*condition.quality)])
    return data.tobytes()


def _camera(page: np.ndarray, rng: random.Random, c: Condition) -> np.ndarray:
    h, w = page.shape[:2]
    side = rng.randint(*c.side)
    out_h, out_w = side, round(side * 0.75)
    fill_share = rng.uniform(0.8, 0.92) if not c.partial else rng.uniform(1.3, 1.6)
    angle = math.radians(rng.uniform(-c.rotation, c.rotation))
    diag = math.hypot(w, h)
    fit = min(out_w / (abs(w * math.cos(angle)) + abs(h * math.sin(angle))),
              out_h / (abs(w * math.sin(angle)) + abs(h * math.cos(angle))))
    scale = fit * fill_share
    centre = np.array([out_w / 2, out_h / 2]) + (np.array([rng.uniform(-0.2, 0.2) * out_w, rng.uniform(-0.2, 0.2)
                                                           * out_h]) if c.partial else 0)
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    quad = corners @ rot.T * scale + centre
    quad += np.array([[rng.uniform(-1, 1), rng.uniform(-1, 1)] for _ in range(4)]) * c.tilt * diag * scale / 2
    m = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), np.float32(quad))
    table = tuple(rng.randint(40, 140) for _ in range(3))
    if c.patterned_table:
        shot = _pattern(out_h, out_w, rng)
        cv2.warpPerspective(page, m, (out_w, out_h), shot, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_TRANSPARENT)
    else:
        shot = cv2.warpPerspective(page, m, (out_w, out_h), flags=cv2.INTER_AREA, borderValue=table)
    if c.distortion:
        shot = _distort(shot, rng.uniform(-c.distortion, c.distortion))
    return shot


def _distort(image: np.ndarray, k: float) -> np.ndarray:
    """Radial lens distortion (barrel for k < 0, pincushion for k > 0) of strength ``k`` at the corners."""
    h, w = image.shape[:2]
    nx = (np.arange(w, dtype=np.float32) - w / 2) / (w / 2)
    ny = (np.arange(h, dtype=np.float32) - h / 2) / (h / 2)
    factor = 1 + k * (nx[None, :] ** 2 + ny[:, None] ** 2) / 2
    return cv2.remap(image, nx[None, :] * factor * (w / 2) + w / 2, ny[:, None] * factor * (h / 2) + h / 2,
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _shadow(h: int, w: int, rng: random.Random) -> np.ndarray:
    """A soft-edged shadow (a hand or a phone) over part of a frame of ``h`` × ``w`` light samples (one per
    8 pixels: its edge spreads over 8 to 25 pixels once scaled up)."""
    mask = np.zeros((h, w), np.float32)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    points = [(cx + rng.uniform(-0.5, 0.5) * w, cy + rng.uniform(-0.5, 0.5) * h) for _ in range(5)]
    hull = cv2.convexHull(np.float32(points)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.6, 3))
    return 1 - mask * rng.uniform(0.3, 0.5)


def _streak(length: float, angle: float) -> np.ndarray:
    """A motion blur kernel: a line ``length`` pixels long at ``angle`` degrees."""
    size = int(math.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    half = (length - 1) / 2
    dx, dy = half * math.cos(math.radians(angle)), half * math.sin(math.radians(angle))
    centre = size // 2
    cv2.line(kernel, (round((centre - dx) * 16), round((centre - dy) * 16)),
             (round((centre + dx) * 16), round((centre + dy) * 16)), 1.0, 1, cv2.LINE_AA, shift=4)
    return kernel / kernel.sum()


def _pattern(h: int, w: int, rng: random.Random) -> np.ndarray:
    """A dark table with a printed pattern: wood-like stripes, a check of dark squares, or scattered dots."""
    base = np.array([rng.randint(20, 90) for _ in range(3)], np.uint8)
    table = np.empty((h, w, 3), np.uint8)
    table[:] = base
    light = tuple(int(v) for v in np.minimum(base.astype(int) + rng.randint(40, 120), 255))
    kind = rng.choice(["stripes", "check", "dots"])
    step = rng.randint(15, 60)
    if kind == "stripes":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        angle = rng.uniform(0, math.pi)
        wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) / step * 2 * math.pi
                      + 3 * np.sin(yy / (7 * step))) * 0.5 + 0.5
        table = (base + wave[..., None] * (np.array(light) - base)).astype(np.uint8)
    elif kind == "check":
        for y in range(0, h, step):
            for x in range((y // step) % 2 * step, w, 2 * step):
                cv2.rectangle(table, (x, y), (x + step - 1, y + step - 1), light, -1)
    else:
        for _ in range(h * w // (step * step)):
            cv2.circle(table, (rng.randrange(w), rng.randrange(h)), rng.randint(2, step // 3 + 2), light, -1)
    return table


def _bend(page: np.ndarray, rng: random.Random, height_mm: tuple[float, float]) -> np.ndarray:
    """The page not lying flat: a surface a curl across the page and creases a few centimetres apart lift up
    to ``height_mm``, seen from an angle (each point shifts by its height in the direction of view) and lit
    from one side (slopes facing away from the light are darker)."""
    h, w = page.shape[:2]
    noise = np.random.default_rng(rng.randrange(2**32))
    curl = cv2.resize(noise.normal(0, 1, (4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    creases = cv2.resize(noise.normal(0, 1, (14, 10)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    height = curl + 0.35 * creases
    height *= rng.uniform(*height_mm) * w / L.PAGE_W / max(1e-6, float(np.abs(height).max()))
    view, towards = rng.uniform(0.3, 0.7), rng.uniform(0, 2 * math.pi)
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    bent = cv2.remap(page, xx + height * view * math.cos(towards), yy + height * view * math.sin(towards),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    light = rng.uniform(0, 2 * math.pi)
    dz_dy, dz_dx = np.gradient(height)
    shade = 1 - 2.5 * (dz_dx * math.cos(light) + dz_dy * math.sin(light))
    return np.clip(bent * np.clip(shade, 0.5, 1.1)[..., None], 0, 255).astype(np.uint8)
