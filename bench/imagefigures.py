"""The image bench's figures (images.py): one row per image and runtime, what follows from them
(the disk each further container adds, actord's figures over containerd's), and how they are
printed and written as JSON. Pure arithmetic and formatting, so that it is unit-tested."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["COLUMNS", "Row", "as_json", "ordinal", "ratios", "table"]

MB = 1_000_000
KB = 1_000


@dataclass(frozen=True)
class Row:
    """What one runtime did with one image: `containers` started one after another."""

    image: str
    runtime: str
    containers: int
    first_start: float
    """Seconds from the request to the 1st container running (its start includes unpacking the image)."""
    last_start: float
    """Seconds for the last (`containers`-th) one."""
    disk_first: int
    """Bytes the runtime's dirs grew by from before the 1st start to after it (content blobs excluded)."""
    disk_last: int
    """The same, after the last start."""
    content: int
    """Bytes the import added to the runtime's content store (the compressed blobs as imported)."""

    @property
    def per_container(self) -> float | None:
        """Bytes each container after the 1st added; None with a single container."""
        if self.containers < 2:
            return None
        return (self.disk_last - self.disk_first) / (self.containers - 1)


COLUMNS: tuple[tuple[str, str], ...] = (
    ("first_start", "1st start ms"),
    ("last_start", "{nth} start ms"),
    ("disk_first", "disk@1st MB"),
    ("disk_last", "disk@{nth} MB"),
    ("per_container", "per-container KB"),
    ("content", "content MB"),
)
"""The figures of a row as the table shows them, in order: attribute, heading."""
SCALE = {"first_start": 1 / 1000, "last_start": 1 / 1000, "disk_first": MB, "disk_last": MB,
         "per_container": KB, "content": MB}
"""What one unit of each column is, in seconds or bytes."""


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _figure(row: Row, attribute: str) -> float | None:
    value: float | None = getattr(row, attribute)
    return None if value is None else value / SCALE[attribute]


def ratios(rows: Iterable[Row], runtime: str, baseline: str) -> dict[str, dict[str, float | None]]:
    """For each image both runtimes ran: each figure of `runtime` over `baseline`'s (None where
    the baseline's is 0 or missing)."""
    by_key = {(row.image, row.runtime): row for row in rows}
    found: dict[str, dict[str, float | None]] = {}
    for (image, name), row in by_key.items():
        base = by_key.get((image, baseline))
        if name != runtime or base is None:
            continue
        found[image] = {}
        for attribute, _ in COLUMNS:
            ours, theirs = getattr(row, attribute), getattr(base, attribute)
            found[image][attribute] = None if ours is None or not theirs else ours / theirs
    return found


def table(rows: list[Row], runtime: str = "actord", baseline: str = "containerd") -> str:
    """The rows under headings, then a line per image of `runtime`'s figures over `baseline`'s."""
    count = rows[0].containers if rows else 0
    headings = [heading.format(nth=ordinal(count)) for _, heading in COLUMNS]
    widths = [max(len(heading), 9) + 2 for heading in headings]
    image_width = max([5, *(len(row.image) for row in rows)])

    def line(image: str, name: str, cells: list[str]) -> str:
        return f"{image:<{image_width}}  {name:<22}" + "".join(
            f"{cell:>{width}}" for cell, width in zip(cells, widths, strict=True))

    lines = [line("image", "runtime", headings)]
    lines += [line(row.image, row.runtime, [_cell(_figure(row, attribute), "") for attribute, _ in COLUMNS])
              for row in rows]
    lines += [line(image, f"{runtime}/{baseline}", [_cell(figures[attribute], "x") for attribute, _ in COLUMNS])
              for image, figures in ratios(rows, runtime, baseline).items()]
    return "\n".join(lines)


def _cell(value: float | None, unit: str) -> str:
    """A figure with one decimal, a ratio with two and its unit; "-" for none."""
    if value is None:
        return "-"
    return f"{value:.2f}{unit}" if unit else f"{value:.1f}"


def as_json(rows: list[Row], runtime: str = "actord", baseline: str = "containerd",
            **about: Any) -> dict[str, Any]:
    """The rows in their own units (seconds, bytes), each with its per-container bytes, and the
    ratios; `about` (the load, what is counted) goes alongside."""
    return {**about,
            "rows": [{**asdict(row), "per_container": row.per_container} for row in rows],
            "ratios": {f"{runtime}/{baseline}": ratios(rows, runtime, baseline)}}
