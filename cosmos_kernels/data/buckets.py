"""Aspect-ratio buckets, reflect padding with its padding mask, and a batch sampler over buckets.

Cosmos trains on five aspect ratios (1:1, 4:3, 3:4, 16:9, 9:16). Each sample goes to the bucket
nearest its own aspect ratio, is resized to fit inside the bucket's size keeping its aspect ratio, and
is padded to that size with reflect padding (edge padding when the image is too small to reflect).
The ``padding_mask`` that goes with it follows cosmos-predict1's ``ReflectionPadding`` augmentor: a
float (1, H, W) map that is 1 on padded pixels and 0 on real content, which the DiT receives as an
extra input channel. ``image_size`` is Cosmos's float tensor [bucket H, bucket W, content H, content W].

A batch holds samples of one bucket only (same size and frame count), so they stack without further
padding: datasets expose ``bucket_key(index)`` and :class:`BucketBatchSampler` groups indices by it.
"""

import math
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.utils.data import Sampler

Tensor = torch.Tensor

# Name -> width / height; the names are Cosmos's "W,H" keys.
ASPECT_RATIOS: dict[str, float] = {"1,1": 1.0, "4,3": 4 / 3, "3,4": 3 / 4, "16,9": 16 / 9, "9,16": 9 / 16}


def bucket_sizes(
    resolution: int, ratios: Sequence[str] = tuple(ASPECT_RATIOS), multiple: int = 16
) -> dict[str, tuple[int, int]]:
    """The (height, width) of each aspect-ratio bucket for a base ``resolution``.

    The short side is ``resolution`` and the long side is ``resolution * ratio`` rounded to a multiple
    of ``multiple`` (16: the tokenizer's 8x spatial compression times the DiT's 2x2 patches), like
    Cosmos's short-side-720 table (720x720, 720x960, 720x1280). For 64: 1:1 is 64x64, 4:3 is 64x80,
    16:9 is 64x112 (height x width).
    """
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"bucket_sizes: multiple must be a positive int, got {multiple!r}")
    if not isinstance(resolution, int) or resolution < multiple or resolution % multiple:
        raise ValueError(
            f"bucket_sizes: resolution must be a positive multiple of {multiple}, got {resolution!r}"
        )
    sizes = {}
    for name in _check_ratios(ratios, "bucket_sizes"):
        ratio = ASPECT_RATIOS[name]
        long_side = max(multiple, round(resolution * max(ratio, 1 / ratio) / multiple) * multiple)
        sizes[name] = (resolution, long_side) if ratio >= 1 else (long_side, resolution)
    return sizes


def nearest_bucket(height: int, width: int, ratios: Sequence[str] = tuple(ASPECT_RATIOS)) -> str:
    """The name of the bucket in ``ratios`` whose aspect ratio is nearest width / height (in log ratio,
    so that 2:1 is as far from 1:1 as 1:2 is)."""
    if height < 1 or width < 1:
        raise ValueError(f"nearest_bucket: height and width must be positive, got {height}x{width}")
    log_ratio = math.log(width / height)
    return min(
        _check_ratios(ratios, "nearest_bucket"), key=lambda n: abs(math.log(ASPECT_RATIOS[n]) - log_ratio)
    )


def resize_and_pad(video: Tensor, size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Fit a (C, T, H, W) ``video`` inside ``size`` = (height, width) and pad it there.

    The video is resized (bilinear, antialiased) by one factor on both axes so that it fits inside
    ``size``, then padded equally on both sides (the extra pixel of an odd amount goes right/bottom)
    with reflect padding, or edge padding when a side's padding is not smaller than the content (reflect
    cannot pad more than the content holds), as Cosmos does. Returns the (C, T, *size) float video, the
    (1, *size) padding mask (1 on padded pixels, 0 on content) and the image_size tensor
    [height, width, content height, content width].
    """
    if not isinstance(video, Tensor) or video.dim() != 4:
        raise ValueError(f"resize_and_pad: video must be a (C, T, H, W) tensor, got {_describe(video)}")
    target_h, target_w = size
    if target_h < 1 or target_w < 1:
        raise ValueError(f"resize_and_pad: size must be positive (height, width), got {size}")
    height, width = video.shape[-2:]
    scale = min(target_h / height, target_w / width)
    content_h = min(target_h, max(1, round(height * scale)))
    content_w = min(target_w, max(1, round(width * scale)))
    frames = video.float().transpose(0, 1)  # (T, C, H, W): interpolate and pad work on the last two axes
    if (content_h, content_w) != (height, width):
        frames = F.interpolate(frames, size=(content_h, content_w), mode="bilinear", antialias=True)
    top, left = (target_h - content_h) // 2, (target_w - content_w) // 2
    bottom, right = target_h - content_h - top, target_w - content_w - left
    mode = "reflect" if max(top, bottom) < content_h and max(left, right) < content_w else "replicate"
    frames = F.pad(frames, (left, right, top, bottom), mode=mode)
    mask = torch.ones(1, target_h, target_w)
    mask[:, top : top + content_h, left : left + content_w] = 0
    image_size = torch.tensor([target_h, target_w, content_h, content_w], dtype=torch.float32)
    return frames.transpose(0, 1).contiguous(), mask, image_size


def check_num_frames(num_frames: int, temporal_compression: int, caller: str) -> None:
    """Raise a ValueError unless ``num_frames`` is 1 + k * ``temporal_compression`` for some k >= 0."""
    if not isinstance(temporal_compression, int) or temporal_compression < 1:
        raise ValueError(
            f"{caller}: temporal_compression must be a positive int, got {temporal_compression!r}"
        )
    if not isinstance(num_frames, int) or num_frames < 1 or (num_frames - 1) % temporal_compression:
        raise ValueError(
            f"{caller}: num_frames must be 1 + {temporal_compression}k (1, {1 + temporal_compression}, "
            f"{1 + 2 * temporal_compression}, ...) for the causal tokenizer, got {num_frames!r}"
        )


class BucketedDataset(Protocol):
    """A map-style dataset that can say, without loading a sample, which batch group it belongs to."""

    def __len__(self) -> int: ...

    def bucket_key(self, index: int) -> Hashable: ...


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices of ``dataset`` that share ``dataset.bucket_key(index)`` (a bucket and a frame
    count: samples that stack into one tensor).

    Each epoch shuffles (with ``shuffle``) the indices within each bucket and then the order of the
    batches, from ``seed`` and the epoch set by :meth:`set_epoch`; a bucket's last partial batch is
    kept unless ``drop_last``. Use with ``DataLoader(dataset, batch_sampler=..., collate_fn=collate)``.
    """

    def __init__(
        self,
        dataset: BucketedDataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"BucketBatchSampler: batch_size must be a positive int, got {batch_size!r}")
        if not hasattr(dataset, "bucket_key"):
            raise TypeError(
                "BucketBatchSampler: dataset must have a bucket_key(index) method, "
                f"got {type(dataset).__name__}"
            )
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.epoch = 0
        self.groups: dict[Hashable, list[int]] = {}
        for index in range(len(dataset)):
            self.groups.setdefault(dataset.bucket_key(index), []).append(index)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration shuffle as epoch ``epoch`` (the same epoch gives the same batches)."""
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        batches = []
        for indices in self.groups.values():
            if self.shuffle:
                indices = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
            for start in range(0, len(indices), self.batch_size):
                batch = indices[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        full_or_kept = math.floor if self.drop_last else math.ceil
        return sum(full_or_kept(len(indices) / self.batch_size) for indices in self.groups.values())


def collate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of sample dicts from one bucket into a batch: tensors along a new first axis,
    numbers into a tensor, strings (captions) into a list."""
    if not samples:
        raise ValueError("collate: got no samples")
    keys = samples[0].keys()
    batch: dict[str, Any] = {}
    for key in keys:
        values = [sample[key] for sample in samples]
        first = values[0]
        if isinstance(first, Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise ValueError(
                    f"collate: {key!r} has different shapes {sorted(shapes)}; batch one bucket at a time"
                )
            batch[key] = torch.stack(values)
        elif isinstance(first, bool | int | float):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = list(values)
    return batch


def _check_ratios(ratios: Sequence[str], caller: str) -> Sequence[str]:
    if isinstance(ratios, str) or not ratios or any(r not in ASPECT_RATIOS for r in ratios):
        raise ValueError(
            f"{caller}: ratios must be a non-empty sequence of {list(ASPECT_RATIOS)}, got {ratios!r}"
        )
    return ratios


def _describe(x: object) -> str:
    return f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
