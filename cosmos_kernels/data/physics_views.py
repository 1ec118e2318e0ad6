"""Several camera views of one synthetic physics scene, for multi-view world models.

The scene of :mod:`cosmos_kernels.data.physics` is filmed by cameras whose images are exact pixel maps
of the front camera's: "front" (the scene as rendered), "back" (a camera facing it from behind the
glass wall: left and right swap, x -> W - x) and "upside-down" (the front camera rolled by 180 degrees:
x -> W - x, y -> H - y, so the balls fall up). Each map is its own inverse, so the same function takes
a position seen in a view back to the front view; a multi-view model whose views agree puts every
ball where these maps say (:func:`view_consistency`). The views are concatenated in time, view-major,
as Cosmos's multi-view models take them: (3, V*T, H, W).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cosmos_kernels.data.physics import PhysicsConfig, PhysicsScene, detect_balls, physics_clip

Tensor = torch.Tensor
VIEWS = ("front", "back", "upside-down")
# Pixel axes each view flips, on a (3, T, H, W) video: W is dim -1, H dim -2.
_FLIPPED_DIMS = {"front": (), "back": (-1,), "upside-down": (-2, -1)}


def _check_views(views: Sequence[str], owner: str) -> tuple[str, ...]:
    views = tuple(views)
    if not views or any(v not in _FLIPPED_DIMS for v in views):
        raise ValueError(f"{owner}: views must be names from {VIEWS}, got {views}")
    return views


def view_video(video: Tensor, view: str) -> Tensor:
    """The (3, T, H, W) front-camera ``video`` as camera ``view`` films it (also its inverse)."""
    dims = _FLIPPED_DIMS[_check_views([view], "view_video")[0]]
    return video.flip(dims) if dims else video


def to_front(view: str, x: float, y: float, height: int, width: int) -> tuple[float, float]:
    """A position (x, y) in pixels seen in ``view`` -> the same point in the front view."""
    dims = _FLIPPED_DIMS[_check_views([view], "to_front")[0]]
    return (width - x if -1 in dims else x), (height - y if -2 in dims else y)


def physics_multiview_clip(
    num_frames: int,
    height: int,
    width: int,
    seed: int | Sequence[int] | np.random.Generator = 0,
    views: Sequence[str] = VIEWS,
    config: PhysicsConfig | None = None,
) -> tuple[Tensor, str, PhysicsScene]:
    """One scene filmed by ``views``: the (3, V*num_frames, H, W) video in [-1, 1] with the views
    concatenated in time, its caption (the front view's) and the scene; same ``seed``, same clip."""
    views = _check_views(views, "physics_multiview_clip")
    video, text, scene = physics_clip(num_frames, height, width, seed, config)
    return torch.cat([view_video(video, view) for view in views], dim=1), text, scene


@dataclass(frozen=True)
class ViewConsistency:
    """How well V views agree with each other, through the known view maps.

    ``distance``: mean over frames, pairs of views and ball colors seen in both views of the distance
    (pixels, front coordinates) between the color's centroids in the two views, each mapped to the
    front view; ``matched``: how many such pairs were compared; ``color_agreement``: the share of
    (frame, pair of views) in which both views show the same set of colors.
    """

    distance: float
    matched: int
    color_agreement: float


def view_consistency(
    video: Tensor, views: Sequence[str] = VIEWS, palette: Mapping[str, tuple[int, int, int]] | None = None
) -> ViewConsistency:
    """:class:`ViewConsistency` of one (3, V*T, H, W) multi-view video in [-1, 1] (views in time)."""
    views = _check_views(views, "view_consistency")
    if not isinstance(video, Tensor) or video.dim() != 4 or video.shape[1] % len(views):
        raise ValueError(
            f"view_consistency: video must be (3, V*T, H, W) with V = {len(views)}, got "
            f"{getattr(video, 'shape', video)}"
        )
    kwargs = {} if palette is None else {"palette": palette}
    height, width = video.shape[2:]
    per_view = video.unflatten(1, (len(views), -1))  # (3, V, T, H, W)
    distances, agree, pairs = [], 0, 0
    for frame in range(per_view.shape[2]):
        seen = [
            {
                color: to_front(view, *xy, height, width)
                for color, xy in detect_balls(per_view[:, v, frame], **kwargs).items()
            }
            for v, view in enumerate(views)
        ]
        for i in range(len(views)):
            for j in range(i + 1, len(views)):
                pairs += 1
                agree += set(seen[i]) == set(seen[j])
                for color in set(seen[i]) & set(seen[j]):
                    (xi, yi), (xj, yj) = seen[i][color], seen[j][color]
                    distances.append(float(np.hypot(xi - xj, yi - yj)))
    mean = float(np.mean(distances)) if distances else float("nan")
    return ViewConsistency(mean, len(distances), agree / max(pairs, 1))


__all__ = [
    "VIEWS",
    "ViewConsistency",
    "physics_multiview_clip",
    "to_front",
    "view_consistency",
    "view_video",
]
