"""Synthetic physics videos with captions: bouncing, colliding balls under gravity, made in-process.

Each scene has 1-3 balls of named colors (:data:`PALETTE`), radii and velocities drawn from a numpy
``Generator``; they fall under gravity and collide elastically with each other (masses proportional to
their area) and with the walls, floor and ceiling. The simulation is exact between collisions (constant
acceleration) and takes :attr:`PhysicsConfig.substeps` steps per frame to find collisions. Frames are
rendered with anti-aliased disks (pixel coverage of the disk edge) over a plain or lightly textured
dark background, as float32 (3, T, H, W) tensors in [-1, 1]. The caption is built from the simulated
state: the colors and count of the balls, what happened (collide / bounce / fall / rise) and the
dominant horizontal direction, e.g. "two red balls bounce to the left".

Coordinates are pixels with x to the right and y down; pixel column j covers [j, j + 1), so its center
is at j + 0.5. :class:`PhysicsScene` keeps the simulated state (positions and velocities per frame,
radii, colors, collision events) so that evaluation can compare generated videos with the truth, e.g.
through :func:`detect_balls`.

The tokenizer and the DiT train on these clips (``training.train_tokenizer``, ``training.train``).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from cosmos_kernels.data.buckets import bucket_sizes, check_num_frames

Tensor = torch.Tensor

# Named ball colors (uint8 RGB), far apart from each other and from the dark backgrounds.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 240),
    "yellow": (245, 225, 40),
    "orange": (250, 140, 20),
    "purple": (160, 60, 210),
    "cyan": (40, 215, 225),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 14),
    "dark gray": (55, 55, 60),
    "gray": (95, 95, 100),
}
FPS = 24.0  # the nominal frame rate of the simulation's frames
_COUNT_WORDS = {1: "a", 2: "two", 3: "three", 4: "four", 5: "five"}


@dataclass(frozen=True)
class PhysicsConfig:
    """How scenes are drawn: a ball count in [min_balls, max_balls], and for each ball a color from
    ``colors``, a radius, a horizontal speed (either direction) and a vertical speed (negative is up),
    each uniform in its range. Lengths are fractions of the frame, so one config works at any size:
    ``gravity`` in frame heights per frame², ``radius`` in units of min(height, width), ``speed`` in
    frame widths per frame, ``vertical_speed`` in frame heights per frame. ``textured_fraction`` of
    the scenes get a lightly textured background; ``substeps`` simulation steps per frame."""

    min_balls: int = 1
    max_balls: int = 3
    radius: tuple[float, float] = (0.07, 0.13)
    speed: tuple[float, float] = (0.01, 0.04)
    vertical_speed: tuple[float, float] = (-0.04, 0.02)
    gravity: float = 0.004
    colors: tuple[str, ...] = tuple(PALETTE)
    textured_fraction: float = 0.5
    substeps: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.min_balls <= self.max_balls <= len(_COUNT_WORDS):
            raise ValueError(
                f"PhysicsConfig: need 1 <= min_balls <= max_balls <= {len(_COUNT_WORDS)}, "
                f"got {self.min_balls}, {self.max_balls}"
            )
        if not 0 < self.radius[0] <= self.radius[1] < 0.25:
            raise ValueError(
                f"PhysicsConfig: radius must be an increasing pair in (0, 0.25), got {self.radius}"
            )
        if not self.colors or any(c not in PALETTE for c in self.colors):
            raise ValueError(f"PhysicsConfig: colors must be names from {list(PALETTE)}, got {self.colors}")
        if self.gravity < 0 or self.substeps < 1:
            raise ValueError(
                f"PhysicsConfig: need gravity >= 0 and substeps >= 1, got {self.gravity}, {self.substeps}"
            )


@dataclass
class PhysicsScene:
    """The simulated state of one clip (N balls, T frames, pixels, y down).

    positions, velocities: (T, N, 2) float64 (x, y) at each frame, in pixels and pixels per frame.
    radii: (N,) pixels. colors: N palette names. gravity: pixels per frame². background: (3, H, W)
    float32 image in [-1, 1] and its name. collisions: (frame, i, j) for each ball-ball collision,
    bounces: (frame, i, wall) with wall in left/right/top/floor; ``frame`` is the first frame after
    the event.
    """

    positions: np.ndarray
    velocities: np.ndarray
    radii: np.ndarray
    colors: list[str]
    gravity: float
    background: np.ndarray
    background_name: str
    collisions: list[tuple[int, int, int]] = field(default_factory=list)
    bounces: list[tuple[int, int, str]] = field(default_factory=list)

    @property
    def height(self) -> int:
        return self.background.shape[1]

    @property
    def width(self) -> int:
        return self.background.shape[2]

    def energy(self) -> np.ndarray:
        """(T,) total mechanical energy: sum over balls of m (|v|² / 2 + g (H - y)) with m = r²."""
        mass = self.radii**2
        kinetic = 0.5 * (self.velocities**2).sum(-1)
        potential = self.gravity * (self.height - self.positions[..., 1])
        return ((kinetic + potential) * mass).sum(-1)


def simulate(
    num_frames: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    config: PhysicsConfig | None = None,
    push: Sequence[float] | None = None,
) -> PhysicsScene:
    """Draw a scene from ``rng`` and simulate it for ``num_frames`` frames of ``height`` x ``width``.

    ``push`` (dx, dy): a velocity change given to the first ball at frame 0, in frame widths and
    heights per frame (the units of the config's speeds). The scene drawn is the same with or without
    it, so that clips of one seed differ only by their push; frame 0 is the same too."""
    config = config or PhysicsConfig()
    if push is not None and (len(push) != 2 or not np.isfinite(np.asarray(push, dtype=float)).all()):
        raise ValueError(f"simulate: push must be two finite numbers (dx, dy), got {push!r}")
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(
            f"simulate: need num_frames >= 1 and height, width >= 8, got {num_frames}, {height}, {width}"
        )
    count = int(rng.integers(config.min_balls, config.max_balls + 1))
    radii = rng.uniform(*config.radius, count) * min(height, width)
    positions = _place(radii, height, width, rng)
    velocities = np.stack(
        [
            rng.uniform(*config.speed, count) * width * rng.choice([-1.0, 1.0], count),
            rng.uniform(*config.vertical_speed, count) * height,
        ],
        axis=-1,
    )
    colors = [str(c) for c in rng.choice(config.colors, count)]
    background_name = str(rng.choice(list(BACKGROUNDS)))
    textured = rng.uniform() < config.textured_fraction
    background = _background(BACKGROUNDS[background_name], height, width, textured, rng)
    scene = PhysicsScene(
        positions=np.empty((num_frames, count, 2)),
        velocities=np.empty((num_frames, count, 2)),
        radii=radii,
        colors=colors,
        gravity=config.gravity * height,
        background=background,
        background_name=background_name,
    )
    if push is not None:
        velocities[0] += np.asarray(push, dtype=float) * (width, height)
    _run(scene, positions, velocities, config.substeps)
    return scene


def render(scene: PhysicsScene, window: tuple[np.ndarray, int, int] | None = None) -> Tensor:
    """The (3, T, H, W) float32 video of ``scene`` in [-1, 1]: each ball an anti-aliased disk (its
    coverage of each pixel, from the distance of the pixel center to the ball's edge), drawn in order
    over the background.

    ``window`` = (offsets, h, w): render only an h x w window whose top-left corner is at ``offsets``
    (T, 2) scene pixels (x, y) in each frame, as a camera moving over the scene sees it (the
    background bilinearly resampled, the balls drawn at their shifted positions); the window must
    keep a pixel's margin inside the scene."""
    frames = scene.positions.shape[0]
    offsets, height, width = np.zeros((frames, 2)), scene.height, scene.width
    if window is None:
        video = np.broadcast_to(scene.background[:, None], (3, frames, height, width)).copy()
    else:
        offsets, height, width = window
        video = _crop(scene.background, offsets, height, width)
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    for ball, color in enumerate(scene.colors):
        cx = (scene.positions[:, ball, 0] - offsets[:, 0])[:, None, None].astype(np.float32)
        cy = (scene.positions[:, ball, 1] - offsets[:, 1])[:, None, None].astype(np.float32)
        distance = np.sqrt((xs[None, None, :] - cx) ** 2 + (ys[None, :, None] - cy) ** 2)  # (T, H, W)
        coverage = np.clip(scene.radii[ball] - distance + 0.5, 0.0, 1.0).astype(np.float32)
        rgb = _to_unit(PALETTE[color])[:, None, None, None]
        video += coverage[None] * (rgb - video)
    return torch.from_numpy(video)


def caption(scene: PhysicsScene) -> str:
    """A sentence describing ``scene`` from its state: who (colors and count), what (collide if two
    balls collide, else bounce if one hits the floor, else fall or rise) and where to (the dominant
    horizontal direction, when the balls' mean horizontal travel is over a tenth of the width), e.g.
    "two red balls bounce to the left", "a blue ball and a yellow ball collide and move to the right". A
    one-frame scene is described as a still: its balls and the background."""
    subject = _subject(scene.colors)
    plural = len(scene.colors) > 1
    if scene.positions.shape[0] == 1:
        return f"{subject} on a {scene.background_name} background"
    if scene.collisions:
        verb = "collide"
    elif any(wall == "floor" for _, _, wall in scene.bounces):
        verb = "bounce" if plural else "bounces"
    elif scene.velocities[..., 1].mean() >= 0:
        verb = "fall" if plural else "falls"
    else:
        verb = "rise" if plural else "rises"
    travel = scene.velocities[1:, :, 0].mean() * (scene.positions.shape[0] - 1)
    if abs(travel) > 0.1 * scene.width:
        verb += " and move" if scene.collisions else ""
        verb += " to the left" if travel < 0 else " to the right"
    return f"{subject} {verb}"


def physics_clip(
    num_frames: int,
    height: int,
    width: int,
    seed: int | Sequence[int] | np.random.Generator = 0,
    config: PhysicsConfig | None = None,
    push: Sequence[float] | None = None,
) -> tuple[Tensor, str, PhysicsScene]:
    """One rendered clip: the (3, num_frames, height, width) float32 video in [-1, 1], its caption and
    the simulated scene; the same ``seed`` (an int, a sequence of ints or a numpy Generator) gives the
    same clip. ``num_frames=1`` gives a still image. ``push``: see :func:`simulate`."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    scene = simulate(num_frames, height, width, rng, config, push)
    return render(scene), caption(scene), scene


@dataclass(frozen=True)
class CameraPan:
    """A camera panning over a scene (T frames): ``offsets`` (T, 2) the window's top-left corner in
    scene pixels (x, y); ``poses`` (T, 4, 4) the camera's matrices (identity rotation; translation the
    window's shift from frame 0 in scene pixels, x right, y down), read as Cosmos reads a
    ``transforms.json`` ``transform_matrix``; ``intrinsics`` (3, 3) raw pixel intrinsics of the window
    (focal length = window width, principal point at its center), so that moving the camera by one unit
    shifts the image by one pixel; ``scene`` the simulated scene under the window."""

    offsets: np.ndarray
    poses: np.ndarray
    intrinsics: np.ndarray
    scene: PhysicsScene


def panning_clip(
    num_frames: int,
    height: int,
    width: int,
    seed: int | Sequence[int] | np.random.Generator = 0,
    config: PhysicsConfig | None = None,
    *,
    scene_size: tuple[int, int] | None = None,
    speed: float = 1.5,
) -> tuple[Tensor, str, CameraPan]:
    """A ``height`` x ``width`` clip of a larger simulated scene (``scene_size``, default twice the clip)
    seen through a camera that pans at ``speed`` pixels per frame in a random direction: the (3, T, H, W)
    video in [-1, 1], the scene's caption (it says nothing of the camera) and the :class:`CameraPan` that
    made it. The window starts where it could pan its whole travel in any direction and stay a pixel
    inside the scene, so where it starts says nothing of where it goes."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    scene_h, scene_w = scene_size or (2 * height, 2 * width)
    travel = speed * (num_frames - 1)
    room = np.array([scene_w - width - 1, scene_h - height - 1], dtype=np.float64)
    if num_frames < 1 or speed < 0 or 2 * travel > room.min():
        raise ValueError(
            f"panning_clip: a {height}x{width} window panning {travel} pixels either way must fit in the "
            f"{scene_h}x{scene_w} scene with a pixel's margin"
        )
    angle = rng.uniform(0, 2 * np.pi)
    step = speed * np.array([np.cos(angle), np.sin(angle)])
    path = step * np.arange(num_frames)[:, None]
    offsets = travel + rng.uniform(0, 1, 2) * (room - 2 * travel) + path
    scene = simulate(num_frames, scene_h, scene_w, rng, config)
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    poses[:, :2, 3] = path
    intrinsics = np.array([[width, 0, width / 2], [0, width, height / 2], [0, 0, 1]], dtype=np.float64)
    video = render(scene, (offsets, height, width))
    return video, caption(scene), CameraPan(offsets, poses, intrinsics, scene)


def physics_batch(
    batch: int,
    num_frames: int,
    height: int,
    width: int,
    seed: int = 0,
    config: PhysicsConfig | None = None,
) -> tuple[Tensor, list[str]]:
    """``batch`` clips stacked into a (batch, 3, num_frames, height, width) float32 video in [-1, 1],
    and their captions; clip i is ``physics_clip(..., seed=[seed, i])``."""
    if batch < 1:
        raise ValueError(f"physics_batch: batch must be positive, got {batch}")
    clips = [physics_clip(num_frames, height, width, [seed, i], config) for i in range(batch)]
    return torch.stack([video for video, _, _ in clips]), [text for _, text, _ in clips]


def label_palette_pixels(
    frame: Tensor, palette: Mapping[str, tuple[int, int, int]] = PALETTE, tolerance: float = 0.25
) -> Tensor:
    """(H, W) int64 labels of a (3, H, W) ``frame`` in [-1, 1]: the index in ``palette`` of each pixel's
    nearest color when within ``tolerance`` of it (Euclidean, on the [-1, 1] scale), else -1."""
    if not isinstance(frame, Tensor) or frame.dim() != 3 or frame.shape[0] != 3:
        raise ValueError(f"frame must be a (3, H, W) tensor, got {getattr(frame, 'shape', frame)}")
    colors = torch.stack([torch.from_numpy(_to_unit(rgb)) for rgb in palette.values()])  # (K, 3)
    pixels = frame.float().flatten(1).T  # (H*W, 3)
    nearest, label = torch.cdist(pixels, colors).min(dim=1)
    label[nearest > tolerance] = -1
    return label.view(frame.shape[1:])


def detect_balls(
    frame: Tensor,
    palette: Mapping[str, tuple[int, int, int]] = PALETTE,
    tolerance: float = 0.25,
    min_pixels: int = 3,
) -> dict[str, tuple[float, float]]:
    """Find balls by color in a (3, H, W) ``frame`` in [-1, 1].

    Pixels are labeled by :func:`label_palette_pixels`. Returns {color: (x, y)}, the centroid of the
    pixel centers of each color with at least ``min_pixels`` pixels. Balls of the same color merge
    into one centroid, and a partly hidden ball's centroid moves toward its visible part.
    """
    try:
        label = label_palette_pixels(frame, palette, tolerance).flatten()
    except ValueError as error:
        raise ValueError(f"detect_balls: {error}") from None
    width = frame.shape[2]
    index = torch.arange(label.numel())
    xs, ys = (index % width).double() + 0.5, torch.div(index, width, rounding_mode="floor").double() + 0.5
    found = {}
    for k, name in enumerate(palette):
        hit = label == k
        if int(hit.sum()) >= min_pixels:
            found[name] = (float(xs[hit].mean()), float(ys[hit].mean()))
    return found


class PhysicsVideoDataset(Dataset):
    """``length`` synthetic physics samples, each a dict with "video" (3, T, H, W) float32 in [-1, 1],
    "caption" (str), "padding_mask" (1, H, W) zeros (scenes are simulated at the bucket's size, so
    nothing is padded), "image_size" [H, W, H, W] and "fps".

    Sample ``index`` is a still image (T = 1) with probability ``image_fraction``, else a clip of
    ``num_frames`` (1 + 8k for the 8x temporal tokenizer: 9, 17, 33 ...); its aspect ratio is drawn
    from ``aspect_ratios`` and its size is that bucket's for ``resolution`` (see
    :func:`~cosmos_kernels.data.buckets.bucket_sizes`). Everything is a function of (``seed``,
    ``index``), so any worker renders the same sample and :meth:`bucket_key` is cheap.
    """

    def __init__(
        self,
        length: int,
        num_frames: int = 17,
        resolution: int = 64,
        image_fraction: float = 0.0,
        aspect_ratios: Sequence[str] = ("1,1",),
        seed: int = 0,
        config: PhysicsConfig | None = None,
        temporal_compression: int = 8,
    ) -> None:
        if length < 1:
            raise ValueError(f"PhysicsVideoDataset: length must be positive, got {length}")
        check_num_frames(num_frames, temporal_compression, "PhysicsVideoDataset")
        if not 0 <= image_fraction <= 1:
            raise ValueError(f"PhysicsVideoDataset: image_fraction must be in [0, 1], got {image_fraction}")
        self.length, self.num_frames, self.seed = length, num_frames, seed
        self.image_fraction = image_fraction
        self.sizes = bucket_sizes(resolution, aspect_ratios)
        self.aspect_ratios = list(aspect_ratios)
        self.config = config or PhysicsConfig()

    def __len__(self) -> int:
        return self.length

    def bucket_key(self, index: int) -> tuple[str, int]:
        """(aspect-ratio bucket, frame count) of sample ``index``, without rendering it."""
        rng = np.random.default_rng([self.seed, self._check(index), 0])
        frames = 1 if rng.uniform() < self.image_fraction else self.num_frames
        return self.aspect_ratios[int(rng.integers(len(self.aspect_ratios)))], frames

    def scene(self, index: int) -> PhysicsScene:
        """The simulated state behind sample ``index``."""
        ratio, frames = self.bucket_key(index)
        height, width = self.sizes[ratio]
        return simulate(frames, height, width, np.random.default_rng([self.seed, index, 1]), self.config)

    def __getitem__(self, index: int) -> dict[str, Tensor | str | float]:
        scene = self.scene(index)
        height, width = scene.height, scene.width
        return {
            "video": render(scene),
            "caption": caption(scene),
            "padding_mask": torch.zeros(1, height, width),
            "image_size": torch.tensor([height, width, height, width], dtype=torch.float32),
            "fps": FPS,
        }

    def _check(self, index: int) -> int:
        if not 0 <= index < self.length:
            raise IndexError(f"PhysicsVideoDataset: index {index} out of range for length {self.length}")
        return index


def _place(radii: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    # Rejection sampling of non-overlapping centers; the radii are small enough (< 1/4 of the short
    # side, at most five balls) that a free spot is found quickly, and the last try is kept otherwise.
    positions = np.empty((len(radii), 2))
    for i, r in enumerate(radii):
        for _ in range(100):
            candidate = rng.uniform([r, r], [width - r, height - r])
            if all(np.hypot(*(candidate - positions[j])) > r + radii[j] + 1 for j in range(i)):
                break
        positions[i] = candidate
    return positions


def _run(scene: PhysicsScene, positions: np.ndarray, velocities: np.ndarray, substeps: int) -> None:
    # Constant-acceleration steps (exact for free flight), then wall reflections (mirror the position
    # across the wall and flip the velocity) and elastic ball-ball collisions along the line of centers.
    radii, g = scene.radii, scene.gravity
    low = radii[:, None]
    high = np.stack([scene.width - radii, scene.height - radii], axis=-1)
    mass = radii**2
    dt = 1.0 / substeps
    scene.positions[0], scene.velocities[0] = positions, velocities
    for frame in range(1, scene.positions.shape[0]):
        for _ in range(substeps):
            positions[:, 0] += velocities[:, 0] * dt
            positions[:, 1] += velocities[:, 1] * dt + 0.5 * g * dt * dt
            velocities[:, 1] += g * dt
            below, above = positions < low, positions > high
            if below.any() or above.any():
                mirrored = np.where(
                    below, 2 * low - positions, np.where(above, 2 * high - positions, positions)
                )
                # Mirroring moves a ball against or along gravity; v_y² + 2 g Δy keeps its energy.
                speed_y = np.sqrt(
                    np.maximum(velocities[:, 1] ** 2 + 2 * g * (mirrored[:, 1] - positions[:, 1]), 0)
                )
                speed = np.stack([np.abs(velocities[:, 0]), speed_y], axis=-1)
                velocities[:] = np.where(below, speed, np.where(above, -speed, velocities))
                positions[:] = mirrored
                for i, axis in zip(*np.nonzero(below | above), strict=True):
                    wall = ("left", "top")[axis] if below[i, axis] else ("right", "floor")[axis]
                    scene.bounces.append((frame, int(i), wall))
            if len(radii) > 1:
                _collide(positions, velocities, radii, mass, frame, scene.collisions)
            np.clip(positions, low, high, out=positions)
        scene.positions[frame], scene.velocities[frame] = positions, velocities


def _collide(
    positions: np.ndarray,
    velocities: np.ndarray,
    radii: np.ndarray,
    mass: np.ndarray,
    frame: int,
    events: list[tuple[int, int, int]],
) -> None:
    offset = positions[None] - positions[:, None]  # (N, N, 2), offset[i, j] = p_j - p_i
    distance = np.sqrt((offset**2).sum(-1))
    touching = np.triu(distance < radii[:, None] + radii[None], k=1)
    for i, j in zip(*np.nonzero(touching), strict=True):
        normal = offset[i, j] / max(distance[i, j], 1e-9)
        approach = float((velocities[i] - velocities[j]) @ normal)
        if approach > 0:
            # Equal and opposite impulses along the normal keep momentum and kinetic energy.
            impulse = 2 * approach / (1 / mass[i] + 1 / mass[j])
            velocities[i] -= impulse / mass[i] * normal
            velocities[j] += impulse / mass[j] * normal
            events.append((frame, int(i), int(j)))
        # Separate overlapping balls (inverse-mass weighted) so they do not stick together.
        overlap = radii[i] + radii[j] - distance[i, j]
        share = mass[j] / (mass[i] + mass[j])
        positions[i] -= overlap * share * normal
        positions[j] += overlap * (1 - share) * normal


def _background(
    rgb: tuple[int, int, int], height: int, width: int, textured: bool, rng: np.random.Generator
) -> np.ndarray:
    # A plain color, or the same with a faint diagonal gradient and a few low-frequency ripples,
    # at most ~0.06 away on the [-1, 1] scale, so it never looks like a ball color.
    image = np.broadcast_to(_to_unit(rgb)[:, None, None], (3, height, width)).astype(np.float32)
    if not textured:
        return image.copy()
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None]
    angle, phase, frequency = rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi), rng.uniform(2, 5)
    gradient = 0.03 * (np.cos(angle) * x + np.sin(angle) * y - 0.5)
    ripple = 0.03 * np.sin(2 * np.pi * frequency * (x * np.cos(angle + 1) + y * np.sin(angle + 1)) + phase)
    return (image + (gradient + ripple)[None]).astype(np.float32)


def _crop(background: np.ndarray, offsets: np.ndarray, height: int, width: int) -> np.ndarray:
    # (3, T, h, w): the background under each frame's window, bilinear between the scene's pixels.
    low = np.floor(offsets).astype(np.int64)
    if (
        (low < 0).any()
        or (low[:, 0] + width + 1 > background.shape[2]).any()
        or (low[:, 1] + height + 1 > background.shape[1]).any()
    ):
        raise ValueError(
            f"render: the {height}x{width} window must stay a pixel inside the "
            f"{background.shape[1]}x{background.shape[2]} scene"
        )
    frac = (offsets - low).astype(np.float32)
    frames = []
    for (x, y), (fx, fy) in zip(low, frac, strict=True):
        patch = background[:, y : y + height + 1, x : x + width + 1]
        rows = (1 - fy) * patch[:, :-1] + fy * patch[:, 1:]
        frames.append((1 - fx) * rows[:, :, :-1] + fx * rows[:, :, 1:])
    return np.stack(frames, axis=1)


def _subject(colors: Sequence[str]) -> str:
    # "a red ball", "two red balls and an orange ball", "a red ball, a blue ball and a green ball".
    counts: dict[str, int] = {}
    for color in colors:
        counts[color] = counts.get(color, 0) + 1
    parts = []
    for color, n in counts.items():
        if n == 1:
            parts.append(f"{'an' if color[0] in 'aeiou' else 'a'} {color} ball")
        else:
            parts.append(f"{_COUNT_WORDS[n]} {color} balls")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _to_unit(rgb: tuple[int, int, int]) -> np.ndarray:
    return np.asarray(rgb, dtype=np.float32) / 255 * 2 - 1


__all__ = [
    "BACKGROUNDS",
    "FPS",
    "PALETTE",
    "CameraPan",
    "PhysicsConfig",
    "PhysicsScene",
    "PhysicsVideoDataset",
    "caption",
    "detect_balls",
    "label_palette_pixels",
    "panning_clip",
    "physics_batch",
    "physics_clip",
    "render",
    "simulate",
]
