"""Images drawn in the terminal with half blocks: two pixels per character cell.

Each cell is ``▀`` with the foreground set to the top pixel and the background to
the bottom pixel, so a 16×16 image takes 16 columns and 8 lines. Works over SSH in
any terminal with 256 or true colours; Rich reduces the colours where needed.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from rich.cells import cell_len, set_cell_size
from rich.color import Color
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style

HALF_BLOCK = "▀"


def downscale(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an ``H×W×C`` (or ``H×W``) uint8 image to ``size×size×C`` by box averaging.

    Box (area) averaging keeps thin structures visible where nearest-neighbour
    sampling would drop them; images smaller than ``size`` are enlarged by
    nearest neighbour instead (a box would be empty).
    """
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    h, w = img.shape[:2]
    out = img.astype(np.float32)
    for axis, n in ((0, h), (1, w)):
        if n >= size:
            # bin starts: output pixel i covers input pixels starts[i] .. starts[i + 1] - 1
            starts = (np.arange(size) * n) // size
            sums = np.add.reduceat(out, starts, axis=axis)
            widths = np.diff(np.append(starts, n)).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = size
            out = sums / widths.reshape(shape)
        else:
            out = np.take(out, (np.arange(size) * n) // size, axis=axis)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def pixel_colour(pixel: np.ndarray) -> Color:
    """The Rich colour of one pixel: gray for one channel, RGB for three."""
    if pixel.shape[-1] == 1:
        v = int(pixel[0])
        return Color.from_rgb(v, v, v)
    return Color.from_rgb(int(pixel[0]), int(pixel[1]), int(pixel[2]))


class HalfBlockImage:
    """A Rich renderable of one ``H×W×C`` uint8 image (``C`` in 1, 3) drawn with ``▀``.

    Line ``k`` shows pixel rows ``2k`` (foreground) and ``2k + 1`` (background); an
    odd last row is drawn over the terminal's own background.
    """

    def __init__(self, pixels: np.ndarray) -> None:
        arr = np.asarray(pixels)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or arr.shape[-1] not in (1, 3) or arr.dtype != np.uint8:
            raise ValueError(f"expected a uint8 H x W x 1|3 image, got {arr.dtype} {arr.shape}")
        self.pixels = arr

    @property
    def width(self) -> int:
        """Width in terminal cells (one per pixel column)."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Height in terminal lines (two pixel rows per line)."""
        return (int(self.pixels.shape[0]) + 1) // 2

    def lines(self) -> list[list[Segment]]:
        """The image as lines of segments, one cell per pixel column."""
        px = self.pixels
        h, w = px.shape[:2]
        # Pixels repeat a lot in medical images: build each colour's Color once.
        cache: dict[bytes, Color] = {}

        def colour(p: np.ndarray) -> Color:
            key = p.tobytes()
            c = cache.get(key)
            if c is None:
                c = cache[key] = pixel_colour(p)
            return c

        out = []
        for top in range(0, h, 2):
            line = []
            for x in range(w):
                fg = colour(px[top, x])
                bg = colour(px[top + 1, x]) if top + 1 < h else None
                line.append(Segment(HALF_BLOCK, Style(color=fg, bgcolor=bg)))
            out.append(line)
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines():
            yield from line
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(self.width, self.width)


class SampleGallery:
    """Groups of images with a caption each (e.g. the samples of one class), wrapped to the width.

    A group is its images side by side with one blank column between them and its
    caption on the line above, cut to the group's width; groups flow left to right
    and wrap onto new rows when the next one would not fit.
    """

    def __init__(self, groups: Sequence[tuple[str, Sequence[np.ndarray]]], gap: int = 2) -> None:
        self.groups = [(caption, [HalfBlockImage(p) for p in images]) for caption, images in groups]
        self.gap = gap

    @staticmethod
    def _group_lines(caption: str, images: list[HalfBlockImage]) -> tuple[int, list[list[Segment]]]:
        width = sum(i.width for i in images) + max(0, len(images) - 1)
        height = max((i.height for i in images), default=0)
        head = caption if cell_len(caption) <= width else caption[: max(0, width - 1)] + "…"
        lines = [[Segment(set_cell_size(head, width), Style(bold=True))]]
        rendered = [i.lines() for i in images]
        for y in range(height):
            row: list[Segment] = []
            for k, (img, img_lines) in enumerate(zip(images, rendered)):
                if k:
                    row.append(Segment(" "))
                row.extend(img_lines[y] if y < len(img_lines) else [Segment(" " * img.width)])
            lines.append(row)
        return width, lines

    def _rows(self, max_width: int) -> Iterable[list[tuple[int, list[list[Segment]]]]]:
        row: list[tuple[int, list[list[Segment]]]] = []
        used = 0
        for caption, images in self.groups:
            width, lines = self._group_lines(caption, images)
            need = width if not row else used + self.gap + width
            if row and need > max_width:
                yield row
                row, need = [], width
            row.append((width, lines))
            used = need
        if row:
            yield row

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for r, row in enumerate(self._rows(options.max_width)):
            if r:
                yield Segment.line()  # a blank line between rows of groups
            height = max(len(lines) for _, lines in row)
            for y in range(height):
                for g, (width, lines) in enumerate(row):
                    if g:
                        yield Segment(" " * self.gap)
                    yield from lines[y] if y < len(lines) else [Segment(" " * width)]
                yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [self._group_lines(c, i)[0] for c, i in self.groups] or [0]
        return Measurement(max(widths), sum(widths) + self.gap * (len(widths) - 1))
