"""Measure a world model on held-out synthetic physics clips (``data.physics``).

Video2World: given the first frames of a clip, predict the rest; compare the predicted frames with the
true ones in PSNR and in ball positions (``detect_balls`` on the predicted frame against
``detect_balls`` on the true frame), next to two baselines that see the true given frames: repeat the
last given frame, and extrapolate linearly (pixels: last + k (last - previous); positions: constant
velocity from the last two given frames).

Text2World: generate from captions of held-out scenes and check that each asked color shows up with
the asked count of balls (connected blobs of that color) and no other palette color does.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cosmos_kernels.data.physics import PALETTE, detect_balls, label_palette_pixels, physics_clip
from cosmos_kernels.metrics import psnr
from cosmos_kernels.pipelines.world import SamplingOptions, Text2WorldPipeline, Video2WorldPipeline

Tensor = torch.Tensor

# A ball the detector does not find in a predicted frame counts as this many pixels of position error,
# as a fraction of the frame side (a quarter of the frame: worse than any baseline's typical miss).
MISS_PENALTY = 0.25
# Fewer sampler steps than Cosmos's 35, at less than half the cost: on the shipped tiny model 35 steps
# give the same figures within 0.1 dB and one Text2World sample in 32.
EVAL_OPTIONS = SamplingOptions(num_steps=15)
_COUNT_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


@dataclass
class Video2WorldScores:
    """Mean PSNR (dB) of the predicted frames and mean ball-position error (pixels) over held-out clips,
    for the model and the baselines; ``misses``: balls of the true frames not found in the model's
    frames (each counted at ``MISS_PENALTY`` of the frame side)."""

    psnr: float
    psnr_repeat: float
    psnr_linear: float
    position_error: float
    position_error_repeat: float
    position_error_linear: float
    misses: int
    balls: int


def _position_error(
    predicted: dict[str, tuple[float, float]], truth: dict[str, tuple[float, float]], penalty: float
) -> tuple[float, int]:
    """Summed distance over the true frame's colors (``penalty`` for each one not predicted), misses."""
    total, misses = 0.0, 0
    for color, (x, y) in truth.items():
        if color in predicted:
            total += math.hypot(predicted[color][0] - x, predicted[color][1] - y)
        else:
            total += penalty
            misses += 1
    return total, misses


def evaluate_video2world(
    pipeline: Video2WorldPipeline,
    seeds: Sequence[int],
    *,
    size: int = 32,
    given_frames: int = 9,
    num_frames: int = 17,
    options: SamplingOptions = EVAL_OPTIONS,
    batch: int = 8,
) -> Video2WorldScores:
    """Scores over the clips ``physics_clip(num_frames, size, size, seed=[seed, 1])`` for ``seeds``
    (held out: training uses other seeds); the prompt is each clip's caption. Frames
    ``given_frames + 1 .. num_frames`` are compared."""
    if not seeds:
        raise ValueError("evaluate_video2world: seeds must not be empty")
    if not 2 <= given_frames < num_frames:
        # The linear baseline extrapolates from the last two given frames.
        raise ValueError(
            f"evaluate_video2world: need 2 <= given_frames < num_frames, got {given_frames}, {num_frames}"
        )
    clips = [physics_clip(num_frames, size, size, [seed, 1]) for seed in seeds]
    videos = torch.stack([video for video, _, _ in clips])
    captions = [text for _, text, _ in clips]
    predicted = []
    for start in range(0, len(clips), batch):
        part = videos[start : start + batch]
        sample = pipeline(
            captions[start : start + batch],
            part[:, :, :given_frames].to(pipeline.device),
            num_frames=num_frames,
            options=options,
            seed=1 + start,
        )
        predicted.append(sample.video.float().cpu())
    model = torch.cat(predicted)[:, :, given_frames:]
    truth = videos[:, :, given_frames:]
    last, previous = (
        videos[:, :, given_frames - 1 : given_frames],
        videos[:, :, given_frames - 2 : given_frames - 1],
    )
    steps = torch.arange(1, num_frames - given_frames + 1, dtype=torch.float32).view(1, 1, -1, 1, 1)
    repeat = last.expand_as(truth)
    linear = (last + steps * (last - previous)).clamp(-1, 1)
    penalty = MISS_PENALTY * size
    errors = {"model": 0.0, "repeat": 0.0, "linear": 0.0}
    misses = balls = 0
    for b in range(len(clips)):
        at_last, at_previous = detect_balls(last[b, :, 0]), detect_balls(previous[b, :, 0])
        for k in range(truth.shape[2]):
            true_balls = detect_balls(truth[b, :, k])
            balls += len(true_balls)
            error, missed = _position_error(detect_balls(model[b, :, k]), true_balls, penalty)
            errors["model"] += error
            misses += missed
            errors["repeat"] += _position_error(at_last, true_balls, penalty)[0]
            moved = {
                color: (x + (k + 1) * (x - at_previous[color][0]), y + (k + 1) * (y - at_previous[color][1]))
                for color, (x, y) in at_last.items()
                if color in at_previous
            }
            errors["linear"] += _position_error({**at_last, **moved}, true_balls, penalty)[0]
    count = max(balls, 1)
    return Video2WorldScores(
        psnr=psnr(model, truth),
        psnr_repeat=psnr(repeat, truth),
        psnr_linear=psnr(linear, truth),
        position_error=errors["model"] / count,
        position_error_repeat=errors["repeat"] / count,
        position_error_linear=errors["linear"] / count,
        misses=misses,
        balls=balls,
    )


@dataclass
class TokenizerScores:
    """How well a video tokenizer keeps the physics clips: PSNR (dB) of its reconstructions, the share
    of the true frames' balls that ``detect_balls`` finds in them, and the mean position error (pixels)
    of the balls it finds."""

    psnr: float
    balls_found: float
    position_error_found: float
    balls: int


@torch.no_grad()
def evaluate_tokenizer(
    tokenizer: torch.nn.Module, seeds: Sequence[int], *, size: int = 32, num_frames: int = 17, batch: int = 8
) -> TokenizerScores:
    """Encode and decode the clips ``physics_clip(num_frames, size, size, seed=[seed, 1])``: the ceiling
    that a world model generating through this tokenizer cannot pass."""
    if not seeds:
        raise ValueError("evaluate_tokenizer: seeds must not be empty")
    videos = torch.stack([physics_clip(num_frames, size, size, [seed, 1])[0] for seed in seeds])
    device = next(tokenizer.parameters()).device
    dtype = next(tokenizer.parameters()).dtype
    decoded = torch.cat([
        tokenizer.decode(tokenizer.encode(videos[i : i + batch].to(device, dtype))).float().cpu()
        for i in range(0, len(videos), batch)
    ])  # fmt: skip
    found = balls = 0
    error = 0.0
    for b in range(len(videos)):
        for k in range(num_frames):
            truth, seen = detect_balls(videos[b, :, k]), detect_balls(decoded[b, :, k])
            balls += len(truth)
            for color, (x, y) in truth.items():
                if color in seen:
                    found += 1
                    error += math.hypot(seen[color][0] - x, seen[color][1] - y)
    return TokenizerScores(
        psnr=psnr(decoded, videos),
        balls_found=found / max(balls, 1),
        position_error_found=error / max(found, 1),
        balls=balls,
    )


def asked_balls(prompt: str) -> dict[str, int]:
    """{color: count} a physics caption asks for: "two red balls ..." -> {"red": 2}, "a blue ball and a
    yellow ball collide" -> {"blue": 1, "yellow": 1}."""
    words = prompt.lower().replace(",", " ").split()
    asked: dict[str, int] = {}
    for i, word in enumerate(words):
        if word in PALETTE and i > 0 and words[i - 1] in _COUNT_WORDS:
            asked[word] = asked.get(word, 0) + _COUNT_WORDS[words[i - 1]]
    return asked


def count_balls(frame: Tensor, tolerance: float = 0.25, min_pixels: int = 3) -> dict[str, int]:
    """{color: number of blobs} in a (3, H, W) frame in [-1, 1]: pixels labeled as ``detect_balls``
    labels them (``data.physics.label_palette_pixels``), then 8-connected blobs of at least
    ``min_pixels``."""
    label = label_palette_pixels(frame, PALETTE, tolerance)
    counts = {}
    for k, name in enumerate(PALETTE):
        mask = label == k
        if int(mask.sum()) < min_pixels:
            continue
        # Connected components by propagating the largest pixel index through 3x3 neighbourhoods.
        ids = torch.where(mask, torch.arange(1, mask.numel() + 1, dtype=torch.float32).view(mask.shape), 0.0)
        while True:
            grown = F.max_pool2d(ids[None, None], 3, stride=1, padding=1)[0, 0] * mask
            if torch.equal(grown, ids):
                break
            ids = grown
        sizes = torch.unique(ids[mask], return_counts=True)[1]
        blobs = int((sizes >= min_pixels).sum())
        if blobs:
            counts[name] = blobs
    return counts


def text2world_share(
    pipeline: Text2WorldPipeline,
    seeds: Sequence[int],
    *,
    size: int = 32,
    num_frames: int = 17,
    options: SamplingOptions = EVAL_OPTIONS,
    batch: int = 8,
) -> tuple[float, float]:
    """(share of samples whose first frame shows exactly the asked colors with the asked counts,
    share showing the asked colors at all) over captions of the held-out scenes
    ``physics_clip(num_frames, size, size, seed=[seed, 1])``, one sample per caption."""
    if not seeds:
        raise ValueError("text2world_share: seeds must not be empty")
    captions = [physics_clip(num_frames, size, size, [seed, 1])[1] for seed in seeds]
    exact = colors = 0
    for start in range(0, len(captions), batch):
        prompts = captions[start : start + batch]
        sample = pipeline(
            prompts, num_frames=num_frames, height=size, width=size, options=options, seed=1 + start
        )
        for prompt, video in zip(prompts, sample.video.float().cpu(), strict=True):
            asked, seen = asked_balls(prompt), count_balls(video[:, 0])
            exact += seen == asked
            colors += set(asked) <= set(seen)
    return exact / len(captions), colors / len(captions)


def write_contact_sheet(videos: Sequence[Tensor], path: str | Path, *, scale: int = 1, gap: int = 1) -> Path:
    """A PNG grid of frames: one row per (3, T, H, W) video in [-1, 1] (rows may differ in T, not in H
    and W), each frame enlarged ``scale`` times (nearest), ``gap`` pixels of white between frames.
    Needs Pillow."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError("write_contact_sheet needs Pillow: pip install pillow") from error
    if not videos or any(v.dim() != 4 or v.shape[0] != 3 for v in videos):
        raise ValueError("write_contact_sheet: videos must be a non-empty list of (3, T, H, W) tensors")
    height, width = videos[0].shape[2:]
    if any(tuple(v.shape[2:]) != (height, width) for v in videos):
        raise ValueError("write_contact_sheet: every video must have the same H and W")
    if scale < 1 or gap < 0:
        raise ValueError(f"write_contact_sheet: need scale >= 1 and gap >= 0, got {scale}, {gap}")
    columns = max(v.shape[1] for v in videos)
    cell_h, cell_w = height * scale + gap, width * scale + gap
    sheet = torch.full((len(videos) * cell_h + gap, columns * cell_w + gap, 3), 255, dtype=torch.uint8)
    for row, video in enumerate(videos):
        frames = ((video.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        frames = frames.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
        for col in range(frames.shape[1]):
            top, left = gap + row * cell_h, gap + col * cell_w
            sheet[top : top + height * scale, left : left + width * scale] = frames[:, col].permute(1, 2, 0)
    path = Path(path)
    Image.fromarray(sheet.numpy()).save(path)
    return path
