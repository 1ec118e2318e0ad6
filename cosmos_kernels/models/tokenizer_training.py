"""Train a small tokenizer on synthetic videos.

The videos are moving shapes drawn in-process: squares and discs of random colors, each moving with
a constant velocity over a plain background, so a test can train without downloading data.

The loss is L1 + MSE on pixels. Cosmos trains its tokenizers with L1 plus a perceptual (VGG) loss
(and later an adversarial one); a perceptual loss needs pretrained network weights, which we never
download, and plain pixel losses are enough to show that a small tokenizer learns to reconstruct.
"""

import torch
import torch.nn.functional as F

from cosmos_kernels.models.tokenizer import ContinuousTokenizer

Tensor = torch.Tensor


def moving_shapes(
    batch: int,
    frames: int,
    height: int,
    width: int,
    shapes: int = 3,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(batch, 3, frames, height, width) videos in [-1, 1]: ``shapes`` squares or discs per video
    moving with constant velocities over a plain background; deterministic under ``generator``."""

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    background = uniform(-1, 1, batch, 3)
    video = background[:, :, None, None, None].expand(batch, 3, frames, height, width).clone()
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y = torch.arange(height, dtype=torch.float32)[:, None]
    x = torch.arange(width, dtype=torch.float32)
    for b in range(batch):
        for _ in range(shapes):
            radius = float(uniform(0.1, 0.25, 1)) * min(height, width)
            cy, cx = float(uniform(0, height, 1)), float(uniform(0, width, 1))
            # Up to ~1/4 of the frame over a 9-frame clip: visible motion, mostly in view.
            vy, vx = (uniform(-1, 1, 2) * min(height, width) / 32).tolist()
            dy, dx = y - (cy + vy * t), x - (cx + vx * t)
            if float(uniform(0, 1, 1)) < 0.5:
                inside = (dy.abs() <= radius) & (dx.abs() <= radius)
            else:
                inside = dy**2 + dx**2 <= radius**2
            color = uniform(-1, 1, 3)[:, None, None, None]
            video[b] = torch.where(inside, color, video[b])
    return video


def train_tokenizer(
    model: ContinuousTokenizer,
    steps: int,
    batch: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
    frames: int = 9,
    size: tuple[int, int] = (32, 32),
    clips: int | None = None,
) -> list[float]:
    """Train ``model`` in place for ``steps`` AdamW steps to reconstruct moving-shape videos of
    ``frames`` x ``size`` under L1 + MSE; returns the loss of each step.

    ``clips=None`` draws a fresh batch each step (from ``seed``); an int draws that many clips once
    and cycles through them, which a small model fits in far fewer steps than the open-ended stream.
    """
    generator = torch.Generator().manual_seed(seed)
    pool = None if clips is None else moving_shapes(clips, frames, *size, generator=generator)
    param = next(model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    history = []
    for step in range(steps):
        if pool is None:
            video = moving_shapes(batch, frames, *size, generator=generator)
        else:
            video = pool[(step * batch + torch.arange(batch)) % len(pool)]
        video = video.to(param)
        out = model.decode(model.encode(video))
        loss = F.l1_loss(out, video) + F.mse_loss(out, video)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    model.eval()
    return history
