"""Read and write video files (mp4 and whatever else FFmpeg knows) with PyAV.

PyAV's wheels bundle the FFmpeg libraries, H.264 encoder included, so nothing is installed or
downloaded at run time. Frames are uint8 (T, H, W, 3) RGB tensors; :func:`to_model` and
:func:`from_model` convert them to and from the tokenizer's (B, 3, T, H, W) layout in [-1, 1] the way
Cosmos does (``x / 255 * 2 - 1``, and back with clamping and rounding).
"""

from fractions import Fraction
from os import PathLike
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

Tensor = torch.Tensor


def _av() -> ModuleType:
    # Imported late: PyAV loads the FFmpeg libraries, which most of the package never needs.
    try:
        import av
    except ImportError as e:
        raise ImportError("video files need PyAV: pip install av") from e
    return av


def read_video(path: str | PathLike[str]) -> tuple[Tensor, Fraction]:
    """The frames of the first video stream of ``path``, uint8 (T, H, W, 3) RGB, and its frame rate."""
    av = _av()
    if not Path(path).is_file():
        raise FileNotFoundError(f"not a readable video: {path} (no such file)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"not a readable video: {path} (no video stream)")
            stream = container.streams.video[0]
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
            rate = stream.average_rate or stream.guessed_rate
    except av.error.FFmpegError as e:
        # FFmpeg's own message without its errno (AVERROR codes such as 1094995529 mean nothing to a user).
        raise ValueError(f"not a readable video: {path} ({e.strerror or type(e).__name__})") from e
    if not frames:
        raise ValueError(f"{path}: the video stream has no frames")
    return torch.from_numpy(np.stack(frames)), Fraction(rate) if rate else Fraction(24)


def write_video(path: str | PathLike[str], frames: Tensor, fps: float | Fraction, crf: int = 18) -> None:
    """Write uint8 (T, H, W, 3) RGB ``frames`` as H.264 at ``fps`` (crf: 0 is lossless luma, 18 is
    visually lossless, higher is smaller). Even sizes use yuv420p, which every player reads; odd
    sizes cannot be chroma-subsampled and use yuv444p."""
    if frames.dtype != torch.uint8 or frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"write_video: frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}"
        )
    av = _av()
    height, width = frames.shape[1:3]
    # A Fraction keeps rates like 30000/1001 exact; limit_denominator turns a float into one.
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
        stream.options = {"crf": str(crf)}
        for frame in frames.cpu().numpy():
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder's delayed frames


def to_model(frames: Tensor) -> Tensor:
    """uint8 (T, H, W, 3) frames to a float32 (1, 3, T, H, W) video in [-1, 1]."""
    return (frames.permute(3, 0, 1, 2)[None].float() / 255 * 2 - 1).contiguous()


def from_model(video: Tensor) -> Tensor:
    """A (1, 3, T, H, W) video in [-1, 1] (values outside are clamped) to uint8 (T, H, W, 3) frames."""
    if video.dim() != 5 or video.shape[:2] != (1, 3):
        raise ValueError(f"from_model: expected a (1, 3, T, H, W) video, got {tuple(video.shape)}")
    pixels = ((video[0].float().clamp(-1, 1) + 1) / 2 * 255).round()
    return pixels.to(torch.uint8).permute(1, 2, 3, 0).contiguous()
