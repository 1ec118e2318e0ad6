"""Training logs: one JSON object per logged step in a JSONL file, and a PNG loss curve from it.

Each record holds ``step`` (optimizer steps done), ``stage``, ``domain`` ("video"/"image"), ``loss``
(the uncertainty-weighted loss that is optimized), ``edm_loss`` (mean lambda-weighted squared error),
``mse``, ``uncertainty`` (mean u(sigma) of the batch), ``lr``, ``grad_norm`` (before clipping),
``samples_per_s``, ``sigma_mean``/``sigma_min``/``sigma_max`` and ``time`` (seconds since the call
started).
"""

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class JsonlLogger:
    """Appends records to ``path`` (created with its folder), one JSON object per line, flushed at once
    so that a crashed run keeps its log.

    An existing log first loses its records with a ``step`` above ``keep_until``: a run resumed from
    the checkpoint of step N repeats the steps after N that the interrupted run had logged, and a
    fresh run (N = 0) starts a new log.
    """

    def __init__(self, path: str | os.PathLike[str], keep_until: int = 0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if self.path.is_file():
            kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= keep_until]
        self._file = self.path.open("w", encoding="utf-8")
        for record in kept:
            self.log(record)

    def log(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a JSONL log; ValueError naming the line that is not a JSON object."""
    records = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{number}: not a JSON object: {line[:80]!r}") from e
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: not a JSON object: {line[:80]!r}")
        records.append(record)
    return records


# Line colors (RGB) of the curves, in the order of ``keys``.
_COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def plot_losses(
    jsonl: str | os.PathLike[str],
    png: str | os.PathLike[str],
    keys: Sequence[str] = ("loss", "edm_loss"),
    size: tuple[int, int] = (800, 480),
) -> Path:
    """Draw the ``keys`` of a training log against ``step`` into a PNG and return its path.

    Each curve is drawn faintly as logged and boldly as a moving average over ~2% of the steps. Drawn
    with Pillow, so that no plotting library is needed; raises ImportError naming it when missing, and
    ValueError when the log has no record with ``step`` and one of ``keys``.
    """
    try:
        from PIL import Image, ImageDraw
    except ImportError as e:
        raise ImportError("plot_losses needs Pillow to write the PNG (pip install pillow)") from e
    records = read_jsonl(jsonl)
    curves = {}
    for key in keys:
        points = [
            (float(r["step"]), float(r[key]))
            for r in records
            if "step" in r and isinstance(r.get(key), int | float) and math.isfinite(r[key])
        ]
        if points:
            curves[key] = points
    if not curves:
        raise ValueError(f"plot_losses: {jsonl} has no record with 'step' and any of {list(keys)}")
    width, height = size
    left, right, top, bottom = 70, 20, 30, 40
    xs = [x for points in curves.values() for x, _ in points]
    ys = [y for points in curves.values() for _, y in points]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = left + (x - x0) / (x1 - x0) * (width - left - right)
        py = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
        return px, py

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((left, top, width - right, height - bottom), outline=(0, 0, 0))
    for i in range(5):  # five ticks per axis, labelled with their values
        fx = i / 4
        x, y = x0 + fx * (x1 - x0), y0 + fx * (y1 - y0)
        px, _ = to_pixel(x, y0)
        _, py = to_pixel(x0, y)
        draw.line((px, height - bottom, px, height - bottom + 4), fill=(0, 0, 0))
        draw.text((px - 12, height - bottom + 8), f"{x:.0f}", fill=(0, 0, 0))
        draw.line((left - 4, py, left, py), fill=(0, 0, 0))
        draw.text((4, py - 6), f"{y:.3g}", fill=(0, 0, 0))
    draw.text((width // 2 - 12, height - 16), "step", fill=(0, 0, 0))
    for index, (key, points) in enumerate(curves.items()):
        color = _COLORS[index % len(_COLORS)]
        faint = tuple(255 - (255 - c) // 3 for c in color)
        if len(points) > 1:
            draw.line([to_pixel(x, y) for x, y in points], fill=faint, width=1)
        window = max(1, len(points) // 50)
        smooth = [
            (points[i][0], sum(y for _, y in points[max(0, i - window + 1) : i + 1]) / min(window, i + 1))
            for i in range(len(points))
        ]
        if len(smooth) > 1:
            draw.line([to_pixel(x, y) for x, y in smooth], fill=color, width=2)
        draw.text((left + 10 + 110 * index, 8), key, fill=color)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    image.save(png, format="PNG")
    return png
