"""What changes from step to step within a stage: the learning-rate factor and the batch's domain.

Both are pure functions of the step, so a resumed run continues them exactly without extra state.
"""

import math
from dataclasses import dataclass
from fractions import Fraction

from cosmos_kernels.training.config import SCHEDULES


@dataclass(frozen=True)
class LRSchedule:
    """The factor on the peak learning rate at each step of a stage of ``steps`` steps: linear warmup
    (step + 1) / warmup_steps over the first ``warmup_steps`` steps, then ``kind`` ("cosine", "linear"
    or "constant") from 1 down to ``min_lr_ratio`` at the last step. For ``LambdaLR``."""

    steps: int
    warmup_steps: int = 0
    kind: str = "cosine"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"LRSchedule: kind must be one of {SCHEDULES}, got {self.kind!r}")
        if self.steps < 1 or not 0 <= self.warmup_steps:
            raise ValueError(f"LRSchedule: need steps >= 1 and warmup_steps >= 0, got {self}")

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = self.steps - self.warmup_steps - 1
        progress = min(1.0, (step - self.warmup_steps) / decay_steps) if decay_steps > 0 else 1.0
        if self.kind == "constant":
            return 1.0
        if self.kind == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * shape


def _ratio(image_ratio: float) -> Fraction:
    # Exact arithmetic on the simplest fraction near the float (0.3 is 3/10, 1/3 is 1/3), so that
    # floating-point error never shifts an image step.
    if not 0 <= image_ratio <= 1:
        raise ValueError(f"image_ratio must be in [0, 1], got {image_ratio!r}")
    return Fraction(image_ratio).limit_denominator(10_000)


def image_steps_before(step: int, image_ratio: float) -> int:
    """How many of the steps 0 .. step-1 are image batches: floor(step * image_ratio)."""
    return math.floor(step * _ratio(image_ratio))


def step_domain(step: int, image_ratio: float) -> str:
    """ "image" or "video": step ``step`` is an image batch when floor((step + 1) r) > floor(step r), which
    spreads the image batches evenly (r = 1/4: steps 3, 7, 11, ...) and gives exactly floor(n r) image
    batches in the first n steps."""
    if image_steps_before(step + 1, image_ratio) > image_steps_before(step, image_ratio):
        return "image"
    return "video"


def domain_cursor(step: int, image_ratio: float, domain: str) -> int:
    """How many batches of ``domain`` the steps 0 .. step-1 consumed: where its data stream resumes."""
    images = image_steps_before(step, image_ratio)
    return images if domain == "image" else step - images
