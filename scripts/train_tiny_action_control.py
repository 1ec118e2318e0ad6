"""Train a tiny action-conditioned Video2World model on pushed balls, on CPU, and measure that its
predictions follow the push.

Data: ``data.physics`` clips of one ball (red, green, blue or yellow, on a plain background) at rest
on a table (no gravity), 9 frames of 32x32, given a push at frame 0 (``physics_clip(..., push=(dx,
dy))``): its speed, in frame sizes per frame, is uniform in PUSH_SPEED and its direction uniform; one
clip in NO_PUSH_EVERY gets none, so that the zero action means "no push". The push is the action: its
(dx, dy) sit in the first two slots of Cosmos's 7-wide vector (the end-effector xyz delta), zeros
elsewhere, times Cosmos's scale (``models.scale_actions``), first of the clip's 8 transitions (the
rest are zero). The caption names the ball's color only, so that the text cannot tell where it goes.

Model: ``tiny-video2world-action`` with predict1's action path as written (the action reaches the
blocks through the AdaLN-LoRA term only, which the tiny config has), width 128, 4 blocks, 2x2 tokens
per latent frame; trained with ``training.train`` on latents of the shipped tiny world tokenizer
(``models.load_tiny_world``), one given latent frame (the first frame) and the action.

Measure (held-out seeds): the pipeline gets the first frame and an action and predicts frames 2-9
(one latent frame);
``detect_balls`` finds the ball in each. For the true push, the zeroed action and the reversed push
(whose truth is the same scene simulated with the reversed push): mean ball-position error (pixels)
against the matching truth, next to keeping the ball where it is (the first frame repeated); and the
direction: the cosine between the predicted and the true displacement of the ball from frame 1 to the
last frame (0 when the ball is not found or moves less than half a pixel) and the share of clips
within 45 degrees.

    nice -n 10 python scripts/train_tiny_action_control.py --output-dir runs/tiny_action

Writes OUTPUT_DIR/tiny_action_control.json (figures and settings), the weights (float16 safetensors)
and a contact sheet (rows per clip: truth, true push, zeroed action, truth of the reversed push,
reversed push); ``--install`` copies the JSON and the sheet into docs/, where the README quotes them.
On one thread of a shared 2-core CPU: encoding 23 s, training 14 min, measuring 6 s (the JSON's timings).
"""

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from cosmos_kernels.data.physics import PhysicsConfig, detect_balls, physics_clip
from cosmos_kernels.metrics import psnr
from cosmos_kernels.models import build_dit, load_tiny_world, scale_actions
from cosmos_kernels.pipelines import HashTextEncoder, SamplingOptions, Video2WorldPipeline
from cosmos_kernels.pipelines.evaluation import MISS_PENALTY, write_contact_sheet
from cosmos_kernels.training import DataConfig, Stage, TrainConfig, train

SIZE, FRAMES = 32, 9
SCENES = PhysicsConfig(
    min_balls=1,
    max_balls=1,
    speed=(0.0, 0.0),
    vertical_speed=(0.0, 0.0),
    gravity=0.0,
    colors=("red", "green", "blue", "yellow"),
    textured_fraction=0.0,
)
PUSH_SPEED = (0.02, 0.05)  # frame sizes per frame: 5 to 13 pixels over the 8 transitions
NO_PUSH_EVERY = 8
MODEL = "tiny-video2world-action"
DIT_OVERRIDES = {
    "model_channels": 128,
    "num_blocks": 4,
    "num_heads": 4,
    "max_img_h": 4,
    "max_img_w": 4,
    "max_frames": 4,
}
TEXT_TOKENS = 4
DOCS = Path(__file__).resolve().parents[1] / "docs"
SHEET_FILE = "tiny_action_control_sheet.png"
TRAIN_SEED = 1  # training clips: [TRAIN_SEED, i]; held out: [seed, 1] for EVAL_SEEDS
EVAL_SEEDS = range(20_000, 20_064)
OPTIONS = SamplingOptions(num_steps=15, guidance=0.0)
WEIGHTS_FILE, STATS_FILE, JSON_FILE = (
    "action_video2world.safetensors",
    "mean_std.pt",
    "tiny_action_control.json",
)


def draw_push(rng: np.random.Generator) -> tuple[float, float]:
    speed, angle = rng.uniform(*PUSH_SPEED), rng.uniform(0, 2 * math.pi)
    return speed * math.cos(angle), speed * math.sin(angle)


def push_actions(push: tuple[float, float]) -> torch.Tensor:
    """The clip's (FRAMES - 1, 7) actions: the push as the first transition's xyz delta, then none."""
    raw = torch.zeros(FRAMES - 1, 7)
    raw[0, :2] = torch.tensor(push)
    return scale_actions(raw)


def clip(seed: list[int], push: tuple[float, float]) -> tuple[torch.Tensor, str, np.ndarray]:
    """(video, caption naming the color, true ball positions (FRAMES, 2))."""
    video, _, scene = physics_clip(FRAMES, SIZE, SIZE, seed, SCENES, push)
    return video, f"a {scene.colors[0]} ball", scene.positions[:, 0]


def training_push(index: int) -> tuple[float, float]:
    if index % NO_PUSH_EVERY == 0:
        return (0.0, 0.0)
    return draw_push(np.random.default_rng([TRAIN_SEED, index, 7]))


class PushedLatents(torch.utils.data.Dataset):
    """Precomputed latents of the training clips with their captions and actions (one bucket)."""

    def __init__(self, pool: dict) -> None:
        self.pool = pool

    def __len__(self) -> int:
        return len(self.pool["captions"])

    def bucket_key(self, index: int) -> tuple[str, int]:
        return "1,1", FRAMES

    def __getitem__(self, index: int) -> dict:
        return {
            "latent": self.pool["latents"][index],
            "caption": self.pool["captions"][index],
            "action": self.pool["actions"][index],
            "padding_mask": torch.zeros(1, SIZE, SIZE),
            "fps": 24.0,
        }


def encode_pool(tokenizer: torch.nn.Module, clips: int) -> dict:
    latents, captions, actions = [], [], []
    with torch.no_grad():
        for start in range(0, clips, 64):
            batch = []
            for i in range(start, min(start + 64, clips)):
                push = training_push(i)
                video, caption, _ = clip([TRAIN_SEED, i], push)
                batch.append(video)
                captions.append(caption)
                actions.append(push_actions(push))
            latents.append(tokenizer.encode(torch.stack(batch)))
    latents = torch.cat(latents)
    mean, std = latents.mean(dim=(0, 2, 3, 4)), latents.std(dim=(0, 2, 3, 4))
    return {
        "latents": latents,
        "captions": captions,
        "actions": torch.stack(actions),
        "mean": mean,
        "std": std,
    }


def train_config(steps: int, lr: float, batch: int, stats: Path) -> TrainConfig:
    return TrainConfig(
        stages=(
            Stage(resolution=SIZE, frames=FRAMES, steps=steps, lr=lr, batch_size=batch, warmup_steps=100),
        ),
        model=MODEL,
        model_overrides=DIT_OVERRIDES,
        tokenizer=None,
        latent_stats={"video": str(stats)},
        data=DataConfig(source="physics", length=1),
        weight_decay=0.0,
        precision="fp32",
        text_dropout=0.0,  # the caption carries no motion, and sampling runs without guidance
        video2world=True,
        min_condition_frames=1,
        max_condition_frames=1,
        condition_dropout=0.0,
        checkpoint_every=500,
    )


def _cosine(predicted: tuple[float, float] | None, start: np.ndarray, truth: np.ndarray) -> float:
    """Cosine between the predicted and true displacements from ``start``; 0 for no (or < 0.5 px) motion."""
    if predicted is None:
        return 0.0
    moved, true = np.asarray(predicted) - start, truth - start
    norm = np.linalg.norm(moved) * np.linalg.norm(true)
    if np.linalg.norm(moved) < 0.5 or norm == 0:
        return 0.0
    return float(moved @ true / norm)


def score(predicted: torch.Tensor, positions: list[np.ndarray], colors: list[str]) -> dict:
    """Position error over frames 2-9 and direction at the last frame, of (B, 3, T, H, W) videos."""
    error, misses, cosines = 0.0, 0, []
    for video, truth, color in zip(predicted, positions, colors, strict=True):
        for k in range(1, FRAMES):
            found = detect_balls(video[:, k]).get(color)
            if found is None:
                error += MISS_PENALTY * SIZE
                misses += 1
            else:
                error += math.dist(found, truth[k])
            if k == FRAMES - 1:
                cosines.append(_cosine(found, truth[0], truth[k]))
    count = len(positions) * (FRAMES - 1)
    return {
        "position_error": error / count,
        "misses": misses,
        "direction_cosine": float(np.mean(cosines)),
        "direction_share_45deg": float(np.mean(np.asarray(cosines) > math.cos(math.pi / 4))),
    }


def measure(pipeline: Video2WorldPipeline, sheet: Path) -> dict:
    """Figures on the held-out EVAL_SEEDS (see the module docstring) and a contact sheet of three clips."""
    pushes = [draw_push(np.random.default_rng([seed, 2])) for seed in EVAL_SEEDS]
    reversed_pushes = [(-dx, -dy) for dx, dy in pushes]
    true = [clip([seed, 1], push) for seed, push in zip(EVAL_SEEDS, pushes, strict=True)]
    flipped = [clip([seed, 1], push) for seed, push in zip(EVAL_SEEDS, reversed_pushes, strict=True)]
    videos = torch.stack([video for video, _, _ in true])
    captions = [caption for _, caption, _ in true]
    colors = [caption.split()[1] for caption in captions]
    cases = {
        "true_push": (torch.stack([push_actions(p) for p in pushes]), true),
        "zeroed_action": (torch.zeros(len(pushes), FRAMES - 1, 7), true),
        "reversed_push": (torch.stack([push_actions(p) for p in reversed_pushes]), flipped),
    }
    figures, predictions = {}, {}
    for name, (actions, truth) in cases.items():
        out = []
        for start in range(0, len(captions), 16):
            part = slice(start, start + 16)
            sample = pipeline(
                captions[part], videos[part, :, :1], num_frames=FRAMES, options=OPTIONS, seed=1 + start,
                actions=actions[part],
            )  # fmt: skip
            out.append(sample.video.float().cpu())
        predictions[name] = torch.cat(out)
        figures[name] = score(predictions[name], [p for _, _, p in truth], colors)
        figures[name]["psnr"] = psnr(
            predictions[name][:, :, 1:], torch.stack([v for v, _, _ in truth])[:, :, 1:]
        )
    still = videos[:, :, :1].expand_as(videos)
    figures["keep_ball_still"] = score(still, [p for _, _, p in true], colors)
    figures["keep_ball_still_vs_reversed"] = score(still, [p for _, _, p in flipped], colors)
    rows = []
    for b in range(3):
        rows += [videos[b], predictions["true_push"][b], predictions["zeroed_action"][b]]
        rows += [flipped[b][0], predictions["reversed_push"][b]]
    write_contact_sheet(rows, sheet, scale=3)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=2048, help="training clips")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--install", action="store_true", help="copy the JSON and contact sheet into docs/")
    args = parser.parse_args()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # see scripts/train_tiny_world_model.py: steady on a shared 2-core machine
    timings = {}

    _, tokenizer, _, _ = load_tiny_world("video2world")
    pool_path, stats_path = out / "latents.pt", out / STATS_FILE
    if not pool_path.exists():
        start = time.time()
        torch.save(encode_pool(tokenizer, args.clips), pool_path)
        timings["encode_s"] = round(time.time() - start)
    pool = torch.load(pool_path)
    torch.save((pool["mean"], pool["std"]), stats_path)

    config = train_config(args.steps, args.lr, args.batch, stats_path)
    text = HashTextEncoder(max_length=TEXT_TOKENS)
    start = time.time()
    result = train(config, text, output_dir=out, resume="latest", datasets=lambda s, d: PushedLatents(pool))
    timings["train_s"] = round(time.time() - start)
    net = build_dit(MODEL, **DIT_OVERRIDES)
    result.ema.copy_to(net)
    # float16 halves the file; the figures are measured with the rounded weights.
    half = {k: v.half().contiguous() for k, v in net.state_dict().items()}
    safetensors.torch.save_file(half, out / WEIGHTS_FILE)
    net.load_state_dict({k: v.float() for k, v in half.items()})
    pipeline = Video2WorldPipeline(
        net.eval(), text, tokenizer, latent_mean=pool["mean"], latent_std=pool["std"]
    )
    start = time.time()
    figures = measure(pipeline, out / SHEET_FILE)
    timings["measure_s"] = round(time.time() - start)
    report = {
        "model": MODEL,
        "dit_overrides": DIT_OVERRIDES,
        "parameters": sum(p.numel() for p in net.parameters()),
        "action_conditioning": net.config.action_conditioning,
        "text_tokens": TEXT_TOKENS,
        "size": SIZE,
        "num_frames": FRAMES,
        "given_frames": 1,
        "push_speed": PUSH_SPEED,
        "no_push_every": NO_PUSH_EVERY,
        "sampling": {"num_steps": OPTIONS.num_steps, "guidance": OPTIONS.guidance},
        "training": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "clips": args.clips, **timings},
        "eval_seeds": [EVAL_SEEDS.start, EVAL_SEEDS.stop],
        "figures": figures,
    }
    (out / JSON_FILE).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    if args.install:
        for name in (JSON_FILE, SHEET_FILE):
            shutil.copyfile(out / name, DOCS / name)
        print(f"installed {JSON_FILE} and {SHEET_FILE} into {DOCS}")


if __name__ == "__main__":
    main()
