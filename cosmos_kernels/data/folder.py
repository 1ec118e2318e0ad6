"""Training samples from a folder of the user's own videos and images, with captions.

Every file under the folder (recursively) whose extension is in :data:`VIDEO_EXTENSIONS` or
:data:`IMAGE_EXTENSIONS` is a sample; all are decoded with PyAV through :mod:`cosmos_kernels.video_io`
(FFmpeg reads png/jpeg/webp/bmp as one-frame videos), so the ``video`` extra is all that is needed.

Captions, in order of precedence:

1. a sidecar text file with the same name and a ``.txt`` extension (``clip.mp4`` + ``clip.txt``);
2. a ``captions.jsonl`` file in the folder, one ``{"file": "clip.mp4", "caption": "..."}`` per line;
3. a ``captions.csv`` file in the folder with a header row ``file,caption``;

where ``file`` is the path relative to the folder, with ``/`` separators. A sample without any caption
gets the empty string (an unconditional sample).

Videos become clips of ``num_frames`` consecutive frames, starting at an offset drawn from (``seed``,
index); a video shorter than that is stretched by repeating frames evenly. Images become one-frame
samples. Then each sample goes to its aspect-ratio bucket (:mod:`cosmos_kernels.data.buckets`).
"""

import csv
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from cosmos_kernels import video_io
from cosmos_kernels.data.buckets import (
    ASPECT_RATIOS,
    bucket_sizes,
    check_num_frames,
    nearest_bucket,
    resize_and_pad,
)

Tensor = torch.Tensor

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
IMAGE_FPS = 24.0  # the "fps" of a still image sample, which has one frame


@dataclass(frozen=True)
class MediaFile:
    """One readable file of the folder: its path, whether it is an image, its frame size, its number
    of frames (from the container, or by counting packets), caption and aspect-ratio bucket."""

    path: Path
    is_image: bool
    height: int
    width: int
    length: int
    caption: str
    bucket: str


def load_captions(root: str | PathLike[str]) -> dict[str, str]:
    """The captions of ``captions.jsonl`` and ``captions.csv`` in ``root`` (the jsonl wins where both
    name a file), keyed by the path relative to ``root`` with ``/`` separators."""
    root = Path(root)
    captions: dict[str, str] = {}
    csv_path, jsonl_path = root / "captions.csv", root / "captions.jsonl"
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"file", "caption"} <= set(reader.fieldnames):
                raise ValueError(f"{csv_path}: expected a header row with columns 'file' and 'caption'")
            captions.update({row["file"]: row["caption"] for row in reader})
    if jsonl_path.is_file():
        for number, line in enumerate(jsonl_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                captions[str(entry["file"])] = str(entry["caption"])
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(
                    f'{jsonl_path}:{number}: expected {{"file": ..., "caption": ...}}, got {line!r}'
                ) from e
    return captions


class VideoFolderDataset(Dataset):
    """The videos and images under ``root`` as samples for training, bucketed by aspect ratio.

    Each sample is a dict with "video" (3, T, H, W) float32 in [-1, 1] (T = ``num_frames`` for
    videos, 1 for images; H x W the size of the sample's bucket for ``resolution``), "caption" (str),
    "padding_mask" (1, H, W) (1 on padded pixels, 0 on content), "image_size" [H, W, content H,
    content W] and "fps" (the video's frame rate; 24 for images).

    Files are opened once here and their first frame decoded, to learn their size: a file that cannot
    be read is skipped with a warning naming it. A folder with no readable video or image raises a
    ValueError; files without a caption get an empty one, with one warning that counts them.
    """

    def __init__(
        self,
        root: str | PathLike[str],
        num_frames: int = 17,
        resolution: int = 64,
        aspect_ratios: Sequence[str] = tuple(ASPECT_RATIOS),
        seed: int = 0,
        temporal_compression: int = 8,
    ) -> None:
        check_num_frames(num_frames, temporal_compression, "VideoFolderDataset")
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"VideoFolderDataset: root {str(self.root)!r} is not a folder")
        self.num_frames, self.seed = num_frames, seed
        self.sizes = bucket_sizes(resolution, aspect_ratios)
        self.aspect_ratios = aspect_ratios
        captions = load_captions(self.root)
        extensions = VIDEO_EXTENSIONS + IMAGE_EXTENSIONS
        self.files: list[MediaFile] = []
        for path in sorted(p for p in self.root.rglob("*") if p.suffix.lower() in extensions and p.is_file()):
            probed = _probe(path)
            if probed is None:
                continue
            name = path.relative_to(self.root).as_posix()
            sidecar = path.with_suffix(".txt")
            text = (
                sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else captions.get(name, "")
            )
            is_image = path.suffix.lower() in IMAGE_EXTENSIONS
            bucket = nearest_bucket(*probed[:2], aspect_ratios)
            self.files.append(MediaFile(path, is_image, *probed, text, bucket))
        if not self.files:
            raise ValueError(
                f"VideoFolderDataset: no readable video or image under {str(self.root)!r} "
                f"(looked for {', '.join(extensions)})"
            )
        uncaptioned = sum(not file.caption for file in self.files)
        if uncaptioned:
            warnings.warn(
                f"VideoFolderDataset: {uncaptioned} of {len(self.files)} files under {str(self.root)!r} have "
                "no caption (no sidecar .txt, no entry in captions.jsonl/csv) and get an empty one",
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.files)

    def bucket_key(self, index: int) -> tuple[str, int]:
        """(aspect-ratio bucket, frame count) of sample ``index``, known without decoding it."""
        file = self.files[index]
        return file.bucket, 1 if file.is_image else self.num_frames

    def __getitem__(self, index: int) -> dict[str, Tensor | str | float]:
        file = self.files[index]
        if file.is_image:
            frames, fps = video_io.read_video(file.path)[0][:1], IMAGE_FPS
        else:
            wanted = _frame_indices(file.length, self.num_frames, self.seed, index)
            frames, rate = _read_frames(file.path, wanted)
            if frames is None:  # the container overstated its frame count: decode all, then choose
                frames, rate = video_io.read_video(file.path)
                frames = frames[_frame_indices(len(frames), self.num_frames, self.seed, index)]
            fps = float(rate)
        video = video_io.to_model(frames)[0]
        video, padding_mask, image_size = resize_and_pad(video, self.sizes[file.bucket])
        return {
            "video": video,
            "caption": file.caption,
            "padding_mask": padding_mask,
            "image_size": image_size,
            "fps": fps,
        }


def _frame_indices(length: int, num_frames: int, seed: int, index: int) -> Tensor:
    # A window of consecutive frames at a reproducible offset; too short a video repeats frames evenly.
    if length >= num_frames:
        start = int(np.random.default_rng([seed, index]).integers(length - num_frames + 1))
        return torch.arange(start, start + num_frames)
    return torch.linspace(0, length - 1, num_frames).round().long()


def _read_frames(path: Path, wanted: Tensor) -> tuple[Tensor | None, Fraction]:
    # Decode only up to the last wanted frame and keep only the wanted ones, so that a short clip from
    # a long, large video costs its own memory, not the whole video's (video_io.read_video keeps all).
    # None when the stream ends before the last wanted frame.
    keep = set(wanted.tolist())
    last = max(keep)
    kept: dict[int, np.ndarray] = {}
    with video_io._av().open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(24)
        for i, frame in enumerate(container.decode(stream)):
            if i in keep:
                kept[i] = frame.to_ndarray(format="rgb24")
            if i == last:
                return torch.from_numpy(np.stack([kept[j] for j in wanted.tolist()])), Fraction(rate)
    return None, Fraction(rate)


def _probe(path: Path) -> tuple[int, int, int] | None:
    # (height, width, frames). Decoding the first frame (not just reading the header) catches files
    # whose stream is broken; the frame count comes from the container or, when it has none (webm,
    # mkv), from counting the stream's packets, which needs no decoding.
    av = video_io._av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError("no video stream")
            stream = container.streams.video[0]
            frame = next(container.decode(stream), None)
            if frame is None:
                raise ValueError("no decodable frame")
            length = stream.frames
        if length <= 0:
            with av.open(str(path)) as container:
                length = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
        return frame.height, frame.width, max(length, 1)
    except (av.FFmpegError, ValueError, OSError) as e:
        warnings.warn(f"VideoFolderDataset: skipping {str(path)!r}, which cannot be read ({e})", stacklevel=3)
        return None


__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "MediaFile", "VideoFolderDataset", "load_captions"]
