"""Train the tiny world model shipped in ``cosmos_kernels/assets/tiny_world/``, on CPU, and measure it.

1. tokenizer: the tiny CV8x8x8 tokenizer, widened (channels 32, channels_mult (1, 2, 2), one res block
   per level: 1.6M parameters), trained on fresh 32x32 physics clips every step (TOKENIZER_PHASES:
   9-frame clips, then 17-frame ones) with ``training.train_tokenizer``: L1 + MSE with the pixels that
   differ from the background weighted 1 + ball weight (the balls cover a few percent of the frame;
   unweighted, the network learns the background and drops them), plus a tie of 12 latent channels to
   8x8-pooled frames (``pooled_video_target``: without it the latents collapse to a constant);
2. latents: encodes a pool of 17-frame 32x32 training clips once (3 latent frames of 4x4) and saves
   their per-channel mean and std (Cosmos's ``mean_std.pt`` statistics);
3. dit: trains the Video2World DiT (model_channels 128, 4 blocks: 2.2M parameters) with
   ``training.train`` on those latents (``tokenizer=None`` and a dataset of precomputed latents: the
   frozen tokenizer would otherwise re-encode every batch), with 0, 1 or 2 given latent frames, so
   that the same network is also the Text2World one (0 given: ``models.tiny_world``); captions go
   through ``HashTextEncoder`` padded to TEXT_TOKENS;
4. ship: writes the tokenizer, the DiT's EMA weights (float16) and the statistics to
   OUTPUT_DIR/tiny_world (``--install``: also into the package), measures Video2World against the
   repeat-last-frame and linear-extrapolation baselines and Text2World's color/count share on
   held-out seeds (``pipelines.evaluation``), writes the figures to tiny_world.json and a contact
   sheet (contact_sheet.png; ``--install``: also the README's docs/tiny_world_contact_sheet.png).

    python scripts/train_tiny_world_model.py --output-dir runs/tiny_world --install

On one thread of a shared 2-core CPU: tokenizer ~28 min (8300 steps), DiT ~40 min (20000 steps of 32
clips), measuring ~3 min. Each phase reuses its output when present (delete the file to redo it); the
DiT resumes from its latest checkpoint.
"""

import argparse
import dataclasses
import functools
import json
import shutil
import time
from pathlib import Path

import safetensors.torch
import torch

from cosmos_kernels.data import physics_clip
from cosmos_kernels.models import build_dit, build_tokenizer
from cosmos_kernels.models.tiny_world import (
    DIT_FILE,
    MANIFEST_FILE,
    STATS_FILE,
    TOKENIZER_FILE,
    load_tiny_world,
    tiny_world_dir,
    tiny_world_text_encoder,
)
from cosmos_kernels.pipelines import (
    HashTextEncoder,
    SamplingOptions,
    Text2WorldPipeline,
    Video2WorldPipeline,
)
from cosmos_kernels.pipelines.evaluation import (
    evaluate_tokenizer,
    evaluate_video2world,
    text2world_share,
    write_contact_sheet,
)
from cosmos_kernels.training import (
    DataConfig,
    Stage,
    TokenizerPhase,
    TrainConfig,
    physics_tokenizer_batch,
    train,
    train_tokenizer,
)

SIZE = 32  # frames are SIZE x SIZE: latents 4x4 per latent frame, 2x2 DiT tokens
TOKENIZER = "tiny-cv8x8x8"
TOKENIZER_OVERRIDES = {"channels": 32, "channels_mult": [1, 2, 2], "num_res_blocks": 1}
DIT_OVERRIDES = {"model_channels": 128, "num_blocks": 4, "num_heads": 4, "max_img_h": 8, "max_img_w": 8}
TEXT_TOKENS = 24  # HashTextEncoder length: the longest caption has 16 words
# (steps, peak lr, weight of the ball pixels, frames, clips per step): ball positions come in the first
# phase, their colors in the second; the last three teach the third latent frame (frames 10-17), which
# 9-frame clips never exercise.
TOKENIZER_PHASES = tuple(
    TokenizerPhase(*phase)
    for phase in (
        (1500, 1e-3, 8.0, 9, 16),
        (2000, 5e-4, 16.0, 9, 16),
        (600, 3e-4, 16.0, 17, 8),
        (1200, 3e-4, 16.0, 17, 8),
        (3000, 2e-4, 16.0, 17, 8),
    )
)
LATENT_TIE = 1.0
TRAIN_SEED = 0  # DiT training clips: physics_clip(17, SIZE, SIZE, [TRAIN_SEED, i])
EVAL_SEEDS = range(10_000, 10_064)  # held out: clips physics_clip(..., [seed, 1])
README_SHEET = Path(__file__).resolve().parents[1] / "docs" / "tiny_world_contact_sheet.png"


def train_and_save_tokenizer(path: Path) -> None:
    """Train the tokenizer through TOKENIZER_PHASES (``training.train_tokenizer``: step k of the whole run
    sees the clips ``physics_clip(frames, SIZE, SIZE, [k, i])``) and save its weights to ``path``."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(TOKENIZER, **TOKENIZER_OVERRIDES)
    start = time.time()

    def log(step: int, loss: float) -> None:
        if step % 100 == 0:
            print(f"tokenizer step {step}: loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)

    train_tokenizer(
        tokenizer,
        TOKENIZER_PHASES,
        batches=functools.partial(physics_tokenizer_batch, size=(SIZE, SIZE)),
        latent_tie=LATENT_TIE,
        on_step=log,
    )
    safetensors.torch.save_file(tokenizer.state_dict(), path)


def load_tokenizer(path: Path) -> torch.nn.Module:
    tokenizer = build_tokenizer(TOKENIZER, **TOKENIZER_OVERRIDES)
    tokenizer.load_state_dict(safetensors.torch.load_file(path))
    return tokenizer.eval()


def encode_pool(tokenizer: torch.nn.Module, path: Path, clips: int) -> None:
    latents, captions = [], []
    with torch.no_grad():
        for start in range(0, clips, 32):
            part = [
                physics_clip(17, SIZE, SIZE, [TRAIN_SEED, i]) for i in range(start, min(start + 32, clips))
            ]
            latents.append(tokenizer.encode(torch.stack([video for video, _, _ in part])))
            captions += [text for _, text, _ in part]
    latents = torch.cat(latents)
    mean, std = latents.mean(dim=(0, 2, 3, 4)), latents.std(dim=(0, 2, 3, 4))
    torch.save({"latents": latents, "captions": captions, "mean": mean, "std": std}, path)


class LatentClips(torch.utils.data.Dataset):
    """Precomputed training latents as the trainer's samples (one bucket: 17 frames at SIZE)."""

    def __init__(self, latents: torch.Tensor, captions: list[str]) -> None:
        self.latents, self.captions = latents, captions

    def __len__(self) -> int:
        return len(self.captions)

    def bucket_key(self, index: int) -> tuple[str, int]:
        return "1,1", 17

    def __getitem__(self, index: int) -> dict:
        return {
            "latent": self.latents[index],
            "caption": self.captions[index],
            "padding_mask": torch.zeros(1, SIZE, SIZE),
            "fps": 24.0,
        }


def dit_config(steps: int, lr: float, batch: int, stats: Path) -> TrainConfig:
    return TrainConfig(
        stages=(Stage(resolution=SIZE, frames=17, steps=steps, lr=lr, batch_size=batch, warmup_steps=100),),
        model="tiny-video2world",
        model_overrides=DIT_OVERRIDES,
        tokenizer=None,
        latent_stats={"video": str(stats)},
        data=DataConfig(source="physics", length=1),
        weight_decay=0.0,
        precision="fp32",  # bfloat16 autocast is slower than float32 on most CPUs
        video2world=True,
        min_condition_frames=0,
        max_condition_frames=2,
        condition_dropout=0.1,
        checkpoint_every=500,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output-dir", type=Path, default=None, help="where to train (not with --measure-only)"
    )
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="train nothing: measure the weights shipped in the package again and rewrite the figures of "
        "their tiny_world.json (and the README's contact sheet)",
    )
    parser.add_argument("--clips", type=int, default=4096, help="DiT training clips")
    parser.add_argument("--steps", type=int, default=20000, help="DiT steps")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--guidance-t2w", type=float, default=3.0, help="classifier-free guidance to ship for Text2World"
    )
    parser.add_argument(
        "--guidance-v2w", type=float, default=1.0, help="classifier-free guidance to ship for Video2World"
    )
    parser.add_argument("--install", action="store_true", help="also copy the result into the package")
    args = parser.parse_args()
    if args.measure_only:
        remeasure_shipped()
        return
    if args.output_dir is None:
        parser.error("--output-dir is required unless --measure-only")
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    # One thread: on a shared 2-core machine two OpenMP threads wait on each other and run 10-100x
    # slower whenever another process holds a core; one thread is steady (0.25 s per tokenizer step).
    torch.set_num_threads(1)
    timings = {}

    tokenizer_path = out / TOKENIZER_FILE
    if not tokenizer_path.exists():
        start = time.time()
        train_and_save_tokenizer(tokenizer_path)
        timings["tokenizer_s"] = round(time.time() - start)
    tokenizer = load_tokenizer(tokenizer_path)

    pool_path, stats_path = out / "latents.pt", out / "mean_std.pt"
    if not pool_path.exists():
        encode_pool(tokenizer, pool_path, args.clips)
    pool = torch.load(pool_path)
    torch.save((pool["mean"], pool["std"]), stats_path)

    config = dit_config(args.steps, args.lr, args.batch, stats_path)
    clips = LatentClips(pool["latents"], pool["captions"])
    start = time.time()
    text = HashTextEncoder(max_length=TEXT_TOKENS)
    result = train(config, text, output_dir=out, resume="latest", datasets=lambda s, d: clips)
    timings["dit_s"] = round(time.time() - start)
    print(f"DiT: trained to step {result.step}")

    net = build_dit(config.model, **config.model_overrides)
    result.ema.copy_to(net)
    ship = out / "tiny_world"
    ship.mkdir(exist_ok=True)
    # float16 halves the files; the figures below are measured with the rounded weights.
    half = {k: v.half().contiguous() for k, v in tokenizer.state_dict().items()}
    safetensors.torch.save_file(half, ship / TOKENIZER_FILE)
    half = {k: v.half().contiguous() for k, v in net.state_dict().items()}
    safetensors.torch.save_file(half, ship / DIT_FILE)
    safetensors.torch.save_file({"mean": pool["mean"], "std": pool["std"]}, ship / STATS_FILE)
    manifest = {
        "tokenizer": TOKENIZER,
        "tokenizer_overrides": TOKENIZER_OVERRIDES,
        "dit_overrides": DIT_OVERRIDES,
        "text_tokens": TEXT_TOKENS,
        "size": SIZE,
        "num_frames": 17,
        "guidance": {"text2world": args.guidance_t2w, "video2world": args.guidance_v2w},
        "training": {
            "tokenizer_phases": [dataclasses.astuple(phase) for phase in TOKENIZER_PHASES],
            "dit_steps": args.steps,
            "dit_batch": args.batch,
            "text_dropout": config.text_dropout,
            "clips": args.clips,
            **timings,
        },
    }
    (ship / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    figures = measure(ship, manifest["guidance"])
    manifest["figures"] = figures
    (ship / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    if args.install:
        sheet = ship / "contact_sheet.png"
        shutil.copytree(ship, tiny_world_dir(), dirs_exist_ok=True, ignore=shutil.ignore_patterns(sheet.name))
        shutil.copyfile(sheet, README_SHEET)
        print(f"installed into {tiny_world_dir()} and {README_SHEET}")


def remeasure_shipped() -> None:
    torch.set_num_threads(1)
    ship = tiny_world_dir()
    manifest = json.loads((ship / MANIFEST_FILE).read_text())
    manifest["figures"] = measure(ship, manifest["guidance"])
    (ship / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    shutil.move(ship / "contact_sheet.png", README_SHEET)
    print(json.dumps(manifest["figures"], indent=2))


def measure(ship: Path, guidance: dict[str, float]) -> dict:
    """Figures of the model in ``ship`` on the held-out EVAL_SEEDS, and the README's contact sheet."""
    v2w = load_tiny_world("video2world", directory=ship)
    t2w = load_tiny_world("text2world", directory=ship)
    text = tiny_world_text_encoder(ship)
    v2w_options = SamplingOptions(num_steps=15, guidance=guidance["video2world"])
    t2w_options = SamplingOptions(num_steps=15, guidance=guidance["text2world"])
    net, tok, mean, std = v2w
    v2w_pipeline = Video2WorldPipeline(net, text, tok, latent_mean=mean, latent_std=std)
    scores = evaluate_video2world(v2w_pipeline, list(EVAL_SEEDS), size=SIZE, options=v2w_options)
    # Guidance 0: the conditional prediction alone, the other end of the guidance sweep.
    unguided = SamplingOptions(num_steps=15, guidance=0.0)
    scores_unguided = evaluate_video2world(v2w_pipeline, list(EVAL_SEEDS), size=SIZE, options=unguided)
    tokenizer_scores = evaluate_tokenizer(tok, list(EVAL_SEEDS), size=SIZE)
    net, tok, mean, std = t2w
    t2w_pipeline = Text2WorldPipeline(net, text, tok, latent_mean=mean, latent_std=std)
    exact, colors = text2world_share(t2w_pipeline, list(EVAL_SEEDS), size=SIZE, options=t2w_options)
    figures = {
        "video2world": dataclasses.asdict(scores),
        "video2world_guidance_0": dataclasses.asdict(scores_unguided),
        "tokenizer_reconstruction": dataclasses.asdict(tokenizer_scores),
        "text2world_exact_share": exact,
        "text2world_color_share": colors,
        "eval_seeds": [EVAL_SEEDS.start, EVAL_SEEDS.stop],
        "sampler_steps": 15,
    }
    _contact_sheet(v2w_pipeline, t2w_pipeline, ship / "contact_sheet.png", v2w_options, t2w_options)
    return figures


def _contact_sheet(
    v2w: Video2WorldPipeline,
    t2w: Text2WorldPipeline,
    path: Path,
    v2w_options: SamplingOptions,
    t2w_options: SamplingOptions,
) -> None:
    """Three held-out clips (true 17 frames, then Video2World from their first 9) and three
    Text2World samples from held-out captions, one row each."""
    clips = [physics_clip(17, SIZE, SIZE, [seed, 1]) for seed in list(EVAL_SEEDS)[:3]]
    videos = torch.stack([video for video, _, _ in clips])
    captions = [text for _, text, _ in clips]
    predicted = v2w(captions, videos[:, :, :9], num_frames=17, options=v2w_options, seed=1).video
    rows = [row for pair in zip(videos, predicted, strict=True) for row in pair]
    prompts = [physics_clip(17, SIZE, SIZE, [seed, 1])[1] for seed in list(EVAL_SEEDS)[3:6]]
    rows += list(t2w(prompts, num_frames=17, height=SIZE, width=SIZE, options=t2w_options, seed=1).video)
    write_contact_sheet(rows, path, scale=3)
    print(f"contact sheet: {path} (rows: truth / Video2World for {captions}; Text2World for {prompts})")


if __name__ == "__main__":
    main()
