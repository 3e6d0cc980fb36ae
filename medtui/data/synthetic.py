"""Built-in synthetic tasks shaped like medical imaging modalities.

Five small tasks generated from a seed with numpy alone (no download, no torch):
two chest-X-ray-like tasks that share classes but differ in acquisition
(``synth-cxr-a`` / ``synth-cxr-b``, a cross-domain pair), then dermoscopy,
H&E histology and blood-cell microscopy look-alikes. Each is learnable by a tiny
CLIP in a few epochs, yet not by a global statistic such as mean brightness, and
their differences make plain sequential fine-tuning forget visibly: they are the
default experiment and the test bed of medtui.

Rendering works on whole batches: per-image parameters are ``(N, 1, 1)`` arrays
broadcast over a shared coordinate grid, so no Python loop runs per pixel.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from medtui.data.base import SPLITS, Split, TaskData, TaskSpec

_S = 32
# One pixel in the [-1, 1] coordinate frame; edges are anti-aliased over about this width.
_PX = 2.0 / _S
Array = np.ndarray


def _spec(name: str, domain: str, classes: tuple[str, ...], templates: tuple[str, ...], channels: int,
          description: str, seed: int) -> TaskSpec:
    """A 32 px synthetic spec with the default split sizes."""
    return TaskSpec(name=name, domain=domain, classes=classes, templates=templates, source="synthetic",
                    image_size=_S, channels=channels, description=description,
                    options={"seed": seed, "n_train": 600, "n_val": 100, "n_test": 200})


_CXR_CLASSES = ("normal", "pneumonia")
_CXR_TEMPLATES = ("a chest x-ray showing {}.", "a frontal chest radiograph with {}.",
                  "a chest x-ray image of {}.", "a radiograph of the lungs: {}.")

SYNTHETIC_SPECS: tuple[TaskSpec, ...] = (
    _spec("synth-cxr-a", "chest x-ray", _CXR_CLASSES, _CXR_TEMPLATES, 1,
          "Synthetic chest X-rays, site A: clear lungs vs. a patchy opacity in one lung; sharp, high contrast.", 101),
    _spec("synth-cxr-b", "chest x-ray", _CXR_CLASSES, _CXR_TEMPLATES, 1,
          "Synthetic chest X-rays, site B: site A's classes, washed out, blurred, noisier, zoomed out, side marker.",
          202),
    _spec("synth-derm", "dermoscopy", ("benign nevus", "melanoma"),
          ("a dermoscopy image of {}.", "a dermatoscopic photo of a skin lesion: {}.",
           "a close-up skin image showing {}.", "dermoscopy of {}."), 3,
          "Synthetic dermoscopy: round uniform brown nevus vs. irregular, asymmetric, multi-coloured melanoma.", 303),
    _spec("synth-histo", "pathology", ("normal tissue", "tumor"),
          ("an H&E histology patch of {}.", "a histopathology image showing {}.",
           "a microscopy slide of {}.", "a pathology tile of {}."), 3,
          "Synthetic H&E tiles: many small round even nuclei vs. large, pleomorphic, coarse-chromatin nuclei.", 404),
    _spec("synth-blood", "blood cell microscopy", ("neutrophil", "lymphocyte", "eosinophil"),
          ("a blood smear image of a {}.", "a microscopy image of a {} blood cell.",
           "a stained white blood cell: {}.", "a peripheral blood smear showing a {}."), 3,
          "Synthetic blood smears: multi-lobed neutrophil, round-nucleus lymphocyte, bilobed granular eosinophil.",
          505),
)


# ----------------------------------------------------------------------------- drawing primitives

def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> Array:
    """``n`` uniforms shaped ``(n, 1, 1)`` so they broadcast over an image grid."""
    return rng.uniform(lo, hi, n).astype(np.float32)[:, None, None]


def _grid() -> tuple[Array, Array]:
    """Pixel-centre coordinates ``(y, x)`` in [-1, 1], shaped ``(1, S, 1)`` and ``(1, 1, S)``."""
    c = (np.arange(_S, dtype=np.float32) + 0.5) * _PX - 1.0
    return c[None, :, None], c[None, None, :]


def _frame(rng: np.random.Generator, n: int, scale: tuple[float, float], shift: float,
           rot_deg: float) -> tuple[Array, Array]:
    """Per-image object coordinates ``(y, x)`` of each pixel: a random zoom, rotation and offset."""
    y0, x0 = _grid()
    s = _u(rng, *scale, n)
    a = _u(rng, -rot_deg, rot_deg, n) * (math.pi / 180)
    oy, ox = _u(rng, -shift, shift, n), _u(rng, -shift, shift, n)
    ca, sa = np.cos(a), np.sin(a)
    y = (ca * y0 - sa * x0) / s - oy
    x = (sa * y0 + ca * x0) / s - ox
    return y, x


def _ellipse(y: Array, x: Array, cy: Array | float, cx: Array | float, ry: Array | float, rx: Array | float,
             ang: Array | float = 0.0) -> Array:
    """Anti-aliased filled ellipse mask in [0, 1] (the hot spot of rendering, hence the in-place arithmetic)."""
    dy, dx = y - cy, x - cx
    ca, sa = np.cos(ang), np.sin(ang)
    u = dx * (ca / rx) + dy * (sa / rx)
    v = dy * (ca / ry) - dx * (sa / ry)
    u = np.square(u) + np.square(v)
    # 1 - d^2 ~ 2 (1 - d) at the border, so the squared radius gives the same ~1 px ramp without a sqrt.
    k = np.minimum(rx, ry) * np.float32(0.5 / _PX)
    u *= -k
    u += 0.5 + k
    return np.clip(u, 0.0, 1.0, out=u)


def _interp(cells: int) -> Array:
    """Bilinear upsampling matrix ``(S, cells)``: ``M @ z @ M.T`` turns a coarse grid into an image."""
    p = np.linspace(0, cells - 1, _S)
    lo = np.minimum(np.floor(p).astype(int), cells - 2)
    w = (p - lo).astype(np.float32)
    m = np.zeros((_S, cells), np.float32)
    m[np.arange(_S), lo] = 1 - w
    m[np.arange(_S), lo + 1] = w
    return m


def _noise(rng: np.random.Generator, n: int, cells: int, cells_x: int | None = None) -> Array:
    """Smooth random fields ``(n, S, S)`` of unit standard deviation; fewer cells = blobbier."""
    my, mx = _interp(cells), _interp(cells_x or cells)
    z = my @ rng.standard_normal((n, cells, cells_x or cells)).astype(np.float32) @ mx.T
    return z / (z.std(axis=(1, 2), keepdims=True) + 1e-6)


def _blur(img: Array, sigma: float) -> Array:
    """Separable Gaussian blur of ``(n, S, S)`` images (edges replicated) as two matrix products."""
    idx = np.arange(_S)
    k = np.exp(-0.5 * ((idx[:, None] - idx[None, :]) / sigma) ** 2).astype(np.float32)
    k /= k.sum(axis=1, keepdims=True)
    return k @ img @ k.T


def _paint(img: Array, mask: Array, color: Array | tuple[float, ...]) -> Array:
    """Alpha-blend an RGB ``color`` (or ``(n, 1, 1, 3)`` colours) into ``img`` where ``mask`` is set."""
    out = np.asarray(color, np.float32) - img
    out *= mask[..., None]
    out += img
    return out


def _rgb(rng: np.random.Generator, n: int, base: tuple[float, float, float], jitter: float) -> Array:
    """Per-image colours ``(n, 1, 1, 3)`` around ``base``: stains and skin tones vary between images."""
    c = np.asarray(base, np.float32) * (1 + rng.uniform(-jitter, jitter, (n, 3)).astype(np.float32))
    return c[:, None, None, :]


def _finish(img: Array, rng: np.random.Generator, noise: float) -> Array:
    """Add pixel noise, clip and quantise to uint8 ``(n, S, S, C)``."""
    if img.ndim == 3:
        img = img[..., None]
    img = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise * 255) + img * np.float32(255)
    return np.clip(img + 0.5, 0, 255, out=img).astype(np.uint8)


# ----------------------------------------------------------------------------- chest x-ray

# A 5x3 bitmap of the letter "R": the side marker radiographers burn into the film.
_MARK_R = np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0], [1, 0, 1], [1, 0, 1]], np.float32)


def _cxr(labels: Array, rng: np.random.Generator, site: str) -> Array:
    """Frontal chest radiographs; class 1 adds a patchy opacity inside a lung field."""
    n, b = len(labels), site == "b"
    y, x = _frame(rng, n, (0.8, 0.92) if b else (0.9, 1.04), 0.06 if b else 0.05, 6 if b else 4)
    body = _ellipse(y, x, 0.08, 0.0, 1.15, _u(rng, 0.8, 0.92, n))
    lcy, lry, lrx = _u(rng, -0.15, -0.05, n), _u(rng, 0.5, 0.6, n), _u(rng, 0.24, 0.3, n)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)[:, None, None]
    lungs = np.maximum(_ellipse(y, x, lcy, -0.4, lry, lrx, 0.12), _ellipse(y, x, lcy, 0.4, lry, lrx, -0.12))
    heart = _ellipse(y, x, _u(rng, 0.2, 0.3, n), _u(rng, 0.08, 0.16, n), _u(rng, 0.2, 0.26, n),
                     _u(rng, 0.22, 0.3, n), 0.4)
    diaphragm = np.clip(0.5 + (y - 0.42 - 0.25 * x**2) / 0.06, 0, 1)
    spine = np.clip(0.5 + (0.09 - np.abs(x)) / 0.04, 0, 1) * body
    air = lungs * (1 - diaphragm) * (1 - heart)
    ribs = 0.5 + 0.5 * np.cos(2 * math.pi * (y * _u(rng, 2.8, 3.4, n) + 0.7 * x**2) + _u(rng, 0, 6.3, n))
    img = 0.06 + 0.5 * body + 0.2 * np.maximum(spine, heart) - air * (0.34 - 0.1 * ribs)
    img += 0.05 * _noise(rng, n, 8) * air  # vascular markings, present in both classes
    # The disease signal: a patchy blob somewhere in one lung (sometimes both), masked to the air space.
    sick = (labels == 1)[:, None, None]
    r = _u(rng, 0.24, 0.36, n)
    cy, cx = lcy + _u(rng, -0.3, 0.3, n), side * (0.4 + _u(rng, -0.08, 0.08, n))
    patchy = np.clip(0.8 + 0.3 * _noise(rng, n, 10), 0, 1)
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r**2))
    both = (rng.random(n) < 0.25)[:, None, None]
    blob = blob + both * np.exp(-((y - cy + 0.1) ** 2 + (x + cx) ** 2) / (2 * (0.8 * r) ** 2))
    img += sick * _u(rng, 0.35, 0.55, n) * np.clip(1.3 * blob, 0, 1) * patchy * air
    # Exposure varies a lot between films, which hides the opacity from mean brightness.
    img = img * _u(rng, 0.8, 1.2, n) + _u(rng, -0.08, 0.08, n)
    if not b:
        return _finish(img, rng, 0.02)
    img = _blur(0.12 + 0.85 * np.clip(img, 0, 1), 0.5) ** 0.95  # site B: low contrast, gamma, soft focus
    # Site B burns a side marker into the film's top left corner (jittered by a pixel). A collimator border
    # was tried and dropped: its strong, variable edges often kept the tiny model at chance for all 3 epochs.
    for i, (r0, c0) in enumerate(rng.integers(2, 5, (n, 2))):
        img[i, r0:r0 + 5, c0:c0 + 3] = np.maximum(img[i, r0:r0 + 5, c0:c0 + 3], 0.8 * _MARK_R)
    return _finish(img, rng, 0.025)


# ----------------------------------------------------------------------------- dermoscopy

def _derm(labels: Array, rng: np.random.Generator) -> Array:
    """Dermoscopy: a lesion on skin; melanoma is larger, irregular, asymmetric and multi-coloured."""
    n = len(labels)
    mel = (labels == 1)[:, None, None]
    y, x = _frame(rng, n, (0.9, 1.1), 0.15, 180)
    tone = rng.random(n).astype(np.float32)[:, None, None, None]
    skin = (1 - tone) * np.array([0.95, 0.78, 0.68], np.float32) + tone * np.array([0.62, 0.42, 0.3], np.float32)
    img = skin * (1 + 0.04 * _noise(rng, n, 6)[..., None])
    # Border radius as a function of angle: low harmonics give an oval nevus, higher ones an irregular melanoma.
    theta = np.arctan2(y, x)
    rad = np.sqrt(x**2 + y**2)
    r0 = np.where(mel, _u(rng, 0.35, 0.6, n), _u(rng, 0.22, 0.45, n))
    shape = 1 + _u(rng, 0.0, 0.1, n) * np.cos(2 * theta + _u(rng, 0, 6.3, n))
    for k in (3, 4, 5, 7):
        shape += mel * _u(rng, 0.06, 0.16, n) * np.cos(k * theta + _u(rng, 0, 6.3, n))
    shape += mel * 0.3 * np.clip(np.cos(theta - _u(rng, 0, 6.3, n)), 0, 1) ** 2  # one lobe bulges out
    lesion = np.clip(0.5 + (r0 * shape - rad) / (_PX * np.where(mel, 1.0, 2.0)), 0, 1)
    brown = _rgb(rng, n, (0.55, 0.36, 0.22), 0.12) * _u(rng, 0.8, 1.1, n)[..., None]
    core = np.clip(1 - rad / (r0 + 1e-3), 0, 1)  # nevi darken smoothly and symmetrically towards the centre
    # Some benign nevi are blue-grey too (blue nevi), so colour alone does not give melanoma away.
    blue = (rng.random(n) < 0.25)[:, None, None, None]
    nevus_col = np.where(blue, _rgb(rng, n, (0.42, 0.45, 0.58), 0.1), brown) * (1 - 0.25 * core[..., None])
    f1, f2 = _noise(rng, n, 5), _noise(rng, n, 5)
    mel_col = _paint(_paint(np.broadcast_to(brown * 0.9, img.shape), np.clip(f1 + 0.2, 0, 1), (0.1, 0.07, 0.07)),
                     np.clip(f2 - 0.3, 0, 1), (0.45, 0.5, 0.62))  # black clods and a blue-grey veil
    mel_col = _paint(mel_col, np.clip(-f2 - 0.9, 0, 1) * 0.8, (0.7, 0.3, 0.3))
    img = _paint(img, lesion, np.where(mel[..., None], mel_col, nevus_col))
    # Hairs and the dermoscope's round field of view are nuisances shared by both classes.
    for _ in range(2):
        a, off = _u(rng, 0, math.pi, n), _u(rng, -0.8, 0.8, n)
        hair = np.clip(0.5 + (0.025 - np.abs(np.cos(a) * y - np.sin(a) * x - off)) / _PX, 0, 1)
        img = _paint(img, hair * (rng.random(n) < 0.3)[:, None, None], (0.15, 0.1, 0.08))
    yy, xx = _grid()
    scope = (rng.random(n) < 0.5)[:, None, None] * (1 - _ellipse(yy, xx, 0, 0, _u(rng, 1.0, 1.25, n), 1.1))
    img = _paint(img, scope, (0.03, 0.03, 0.03))
    return _finish(img * _u(rng, 0.85, 1.1, n)[..., None], rng, 0.02)


# ----------------------------------------------------------------------------- histology

def _histo(labels: Array, rng: np.random.Generator) -> Array:
    """H&E tiles: pink fibrous stroma with purple nuclei; tumour nuclei are large, pleomorphic and coarse."""
    n = len(labels)
    tum = labels == 1
    y, x = _grid()
    fibres = _noise(rng, n, 4, 14)  # anisotropic: stroma looks streaky, along either axis
    fibres = np.where((rng.random(n) < 0.5)[:, None, None], fibres, fibres.transpose(0, 2, 1))
    eosin = _rgb(rng, n, (0.92, 0.62, 0.78), 0.12)
    img = eosin * (1 + 0.06 * fibres[..., None])
    img = _paint(img, np.clip(_noise(rng, n, 4) - 1.2, 0, 1), (0.97, 0.93, 0.95))  # fat / lumen holes
    hema = _rgb(rng, n, (0.36, 0.2, 0.55), 0.2)
    # Normal tiles get more (small) nuclei so that the purple area alone does not give the class away.
    count = np.where(tum, rng.integers(6, 12, n), rng.integers(24, 40, n))
    nuclei = np.zeros((n, _S, _S), np.float32)
    shade = np.zeros((n, _S, _S), np.float32)
    for k in range(int(count.max())):
        i = np.flatnonzero(k < count)  # only the tiles that still get a k-th nucleus
        t, m = tum[i][:, None, None], len(i)
        base = np.where(t, _u(rng, 0.15, 0.22, m), _u(rng, 0.08, 0.1, m))
        squash = np.where(t, _u(rng, 0.55, 1.0, m), _u(rng, 0.85, 1.0, m))
        mask = _ellipse(y, x, _u(rng, -1, 1, m), _u(rng, -1, 1, m), base * squash, base, _u(rng, 0, 3.2, m))
        dark = np.where(t, _u(rng, 0.55, 0.95, m), _u(rng, 0.75, 0.9, m))
        shade[i] = np.where(mask > nuclei[i], dark, shade[i])
        nuclei[i] = np.maximum(nuclei[i], mask)
    # Tumour chromatin is coarse and uneven; normal nuclei are evenly stained.
    grain = 1 + 0.25 * tum[:, None, None] * _noise(rng, n, 16)
    img = _paint(img, nuclei, hema * (shade * grain)[..., None] + (1 - shade[..., None]) * 0.9)
    img = img * _u(rng, 0.85, 1.1, n)[..., None]  # section thickness / illumination
    return _finish(img, rng, 0.02)


# ----------------------------------------------------------------------------- blood smear

def _blood(labels: Array, rng: np.random.Generator) -> Array:
    """A white blood cell centred among red cells; the nucleus shape and granules give the class."""
    n = len(labels)
    neu, lym, eos = (labels == 0), (labels == 1), (labels == 2)
    y, x = _frame(rng, n, (0.9, 1.1), 0.12, 180)
    bg = _rgb(rng, n, (0.93, 0.88, 0.86), 0.04)
    img = np.broadcast_to(bg, (n, _S, _S, 3))
    for _ in range(4):  # red cells with central pallor, scattered around
        cy, cx, r = _u(rng, -1.1, 1.1, n), _u(rng, -1.1, 1.1, n), _u(rng, 0.22, 0.3, n)
        rbc = _ellipse(y, x, cy, cx, r, r) * (rng.random(n) < 0.7)[:, None, None]
        pallor = 1 - 0.5 * _ellipse(y, x, cy, cx, 0.5 * r, 0.5 * r)
        img = _paint(img, rbc * pallor, _rgb(rng, n, (0.9, 0.6, 0.62), 0.05))
    cell_r = np.select([neu, lym, eos], [rng.uniform(0.4, 0.52, n), rng.uniform(0.34, 0.45, n),
                                         rng.uniform(0.42, 0.54, n)]).astype(np.float32)[:, None, None]
    cell = _ellipse(y, x, 0, 0, cell_r * _u(rng, 0.92, 1.0, n), cell_r, _u(rng, 0, 3.2, n))
    cyto = np.where(neu[:, None, None, None], _rgb(rng, n, (0.9, 0.82, 0.88), 0.05),
                    np.where(lym[:, None, None, None], _rgb(rng, n, (0.72, 0.76, 0.92), 0.05),
                             _rgb(rng, n, (0.93, 0.62, 0.46), 0.05)))
    granules = np.clip(_noise(rng, n, 16) + 0.2, 0, 1) * eos[:, None, None]
    cyto = _paint(np.broadcast_to(cyto, img.shape), granules, (0.9, 0.35, 0.2))  # orange-red eosinophil granules
    img = _paint(img, cell, cyto)
    # The nucleus gives the class; each shape is drawn on its own class's images only.
    a0 = _u(rng, 0, 6.3, n)
    nuc = np.zeros((n, _S, _S), np.float32)
    i = np.flatnonzero(neu)
    r, m, yi, xi = cell_r[i], len(i), y[i], x[i]
    lobes, lob_r = rng.integers(3, 6, m)[:, None, None], r * _u(rng, 0.28, 0.36, m)
    for k in range(5):  # neutrophil: 3-5 small lobes strung along an arc
        a = a0[i] + k * 1.25 + _u(rng, -0.2, 0.2, m)
        lobe = _ellipse(yi, xi, 0.5 * r * np.sin(a), 0.5 * r * np.cos(a), lob_r, lob_r)
        nuc[i] = np.maximum(nuc[i], (k < lobes) * lobe)
    i = np.flatnonzero(eos)
    r, m, yi, xi = cell_r[i], len(i), y[i], x[i]
    for k in range(2):  # eosinophil: two opposite oval lobes
        a, r_eo = a0[i] + k * math.pi, r * _u(rng, 0.34, 0.4, m)
        nuc[i] = np.maximum(nuc[i], _ellipse(yi, xi, 0.45 * r * np.sin(a), 0.45 * r * np.cos(a), r_eo, 0.8 * r_eo, a))
    i = np.flatnonzero(lym)
    r, m = cell_r[i], len(i)
    ecc, r_ly = r * _u(rng, 0.0, 0.12, m), r * _u(rng, 0.72, 0.85, m)  # lymphocyte: one big round nucleus
    nuc[i] = _ellipse(y[i], x[i], ecc * np.sin(a0[i]), ecc * np.cos(a0[i]), r_ly, 0.95 * r_ly)
    img = _paint(img, nuc * cell, _rgb(rng, n, (0.38, 0.18, 0.48), 0.12) * _u(rng, 0.8, 1.15, n)[..., None])
    img = img * _u(rng, 0.88, 1.08, n)[..., None]
    return _finish(img, rng, 0.02)


def _cxr_a(labels: Array, rng: np.random.Generator) -> Array:
    """Chest X-rays from site A (sharp, high contrast)."""
    return _cxr(labels, rng, "a")


def _cxr_b(labels: Array, rng: np.random.Generator) -> Array:
    """Chest X-rays from site B (washed out, soft, noisy, zoomed out, marked)."""
    return _cxr(labels, rng, "b")


_GENERATORS: dict[str, Callable[[Array, np.random.Generator], Array]] = {
    "synth-cxr-a": _cxr_a,
    "synth-cxr-b": _cxr_b,
    "synth-derm": _derm,
    "synth-histo": _histo,
    "synth-blood": _blood,
}


def generate(spec: TaskSpec, seed: int | None = None, n_train: int | None = None, n_val: int | None = None,
             n_test: int | None = None) -> TaskData:
    """Render a synthetic task's train/val/test splits; the same arguments give byte-identical arrays.

    Arguments left ``None`` come from ``spec.options``. Each split draws from its own
    random stream (seeded by the seed and the split's index), so resizing one split
    leaves the others unchanged. Labels are class-balanced (counts differ by at most one).
    The generator is picked by ``spec.options["generator"]`` if set, else by ``spec.name``.
    """
    from medtui.errors import DataError

    key = str(spec.options.get("generator", spec.name))
    if key not in _GENERATORS:
        raise DataError(f"no synthetic generator for task {spec.name!r} (known: {', '.join(_GENERATORS)})")
    opts = spec.options
    seed = int(opts.get("seed", 0) if seed is None else seed)
    if seed < 0:
        raise DataError(f"task {spec.name!r}: seed must be >= 0, got {seed}")
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    defaults = {"train": 600, "val": 100, "test": 200}
    splits: dict[str, Split] = {}
    for index, name in enumerate(SPLITS):
        size = int(opts.get(f"n_{name}", defaults[name]) if sizes[name] is None else sizes[name])
        if size < (0 if name == "val" else 1):
            raise DataError(f"task {spec.name!r}: n_{name} must be >= {0 if name == 'val' else 1}, got {size}")
        if size == 0:  # a task may go without a validation split
            continue
        rng = np.random.default_rng([seed, index])
        labels = rng.permutation(np.arange(size) % spec.n_classes).astype(np.int64)
        images = _GENERATORS[key](labels, rng)
        splits[name] = Split(images=np.ascontiguousarray(images.reshape(size, _S, _S, -1)), labels=labels)
    return TaskData(spec=spec, splits=splits)
