"""Train a tiny multi-view world model on CPU and measure whether its views agree with each other.

Data: synthetic physics scenes (``data.physics_views``) filmed by three cameras whose images are exact
pixel maps of each other: front, back (left-right mirrored) and upside-down (rotated by 180 degrees),
9 frames of 32x32 per view, concatenated in time, view-major, as Cosmos's multi-view models take them.
The shipped tiny world model's tokenizer (``models.load_tiny_world``) encodes each view alone
(``pipelines.encode_views``); a ``tiny-multiview-video2world`` DiT (3 views, 3 view-embedding
channels, the tiny world DiT's size) starts from the tiny world's single-view Video2World DiT
(``warm_start``: as Cosmos post-trains its multi-view model from the single-view one; the new view
channels start at zero) and is trained with ``training.train`` on those latents, the clip's caption
given to every view, with the first 0, 1 or 2 latent frames of the sequence given: as the views are
concatenated view-major, 2 given frames are the whole front view, and the network learns to film the
scene it shows from the other two cameras (0: joint Text2World).

Measure (48 held-out scenes): the front view is given (its 9 frames, through the tokenizer) and the
network generates the back and upside-down views. The given front view fixes the scene, and the view
maps fix what the other cameras film, so the true back and upside-down views (through the tokenizer)
are the only views consistent with it: their PSNR, and the mean absolute error on the pixels where the
true views show a ball (``data.label_palette_pixels``; the balls are what a wrong view gets wrong, the
background is the same in every view up to the flips), measure consistency densely. The sparse
counterpart: ``data.view_consistency`` detects the balls by color in every view, maps the centroids to
front-view coordinates and averages the distance between the same color's positions over all pairs of
views. Baselines:

- shuffled view embeddings: the same network and noise with its view-embedding rows permuted (front <-
  back <- upside-down <- front), so that it films the scene as the wrong cameras: this isolates the
  view channels as the control;
- unmapped copies: the given front view repeated as the other two views, i.e. views that agree on
  the scene but ignore the camera geometry;
- background only: the other views without balls (each view's flipped background);
- the true views before the tokenizer: the tokenizer's floor.

Joint Text2World of all three views (nothing given) is run too; its detected balls are counted.

    nice -n 10 python scripts/train_tiny_multiview.py --output-dir runs/tiny_multiview

Writes OUTPUT_DIR/tiny_multiview.json and docs/tiny_multiview.json (the README's figures). On one
thread of the shared 2-core CPU: encoding ~1 min, training ~17 min (4500 steps of 32 scenes),
measuring ~1 min.
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import safetensors.torch
import torch

from cosmos_kernels.data.physics import label_palette_pixels
from cosmos_kernels.data.physics_views import VIEWS, physics_multiview_clip, view_consistency, view_video
from cosmos_kernels.models import build_dit, load_tiny_world, normalize_latents, tiny_world_manifest
from cosmos_kernels.pipelines import (
    HashTextEncoder,
    MultiviewVideo2WorldPipeline,
    SamplingOptions,
    decode_views,
    encode_views,
)
from cosmos_kernels.training import DataConfig, Stage, TrainConfig, train
from cosmos_kernels.training.checkpoint import EMA_FILE, MODEL_FILE

SIZE, FRAMES = 32, 9  # per view: 2 latent frames of 4x4, 2x2 DiT tokens each; 24 tokens for 3 views
MODEL = "tiny-multiview-video2world"
LATENT_FRAMES = 2  # per view
# The shipped tiny world DiT's size, so that training starts from its weights (warm_start).
DIT_OVERRIDES = tiny_world_manifest()["dit_overrides"]
TEXT_TOKENS = tiny_world_manifest()["text_tokens"]  # HashTextEncoder length per view
TRAIN_SEED = 1  # training scenes: physics_multiview_clip(FRAMES, SIZE, SIZE, [TRAIN_SEED, i])
EVAL_SEEDS = range(20_000, 20_048)  # held out: [seed, 1]
FIGURES = Path(__file__).resolve().parents[1] / "docs" / "tiny_multiview.json"


class PerViewText:
    """The caption's embedding for every view: (B, V*L, D), as Cosmos concatenates V prompts."""

    def __init__(self, encoder: HashTextEncoder, views: int) -> None:
        self.encoder, self.views, self.width = encoder, views, encoder.width

    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        emb, mask = self.encoder(captions)
        return emb.repeat(1, self.views, 1), mask.repeat(1, self.views)


class LatentScenes(torch.utils.data.Dataset):
    """Precomputed multi-view latents as the trainer's samples (one bucket)."""

    def __init__(self, latents: torch.Tensor, captions: list[str]) -> None:
        self.latents, self.captions = latents, captions

    def __len__(self) -> int:
        return len(self.captions)

    def bucket_key(self, index: int) -> tuple[str, int]:
        return "1,1", FRAMES

    def __getitem__(self, index: int) -> dict:
        return {
            "latent": self.latents[index],
            "caption": self.captions[index],
            "padding_mask": torch.zeros(1, SIZE, SIZE),
            "fps": 24.0,
        }


def encode_pool(tokenizer: torch.nn.Module, scenes: int) -> dict:
    latents, captions = [], []
    with torch.no_grad():
        for start in range(0, scenes, 32):
            part = [
                physics_multiview_clip(FRAMES, SIZE, SIZE, [TRAIN_SEED, i])
                for i in range(start, min(start + 32, scenes))
            ]
            videos = torch.stack([video for video, _, _ in part])
            latents.append(encode_views(tokenizer, videos, len(VIEWS)))
            captions += [text for _, text, _ in part]
    latents = torch.cat(latents)
    mean, std = latents.mean(dim=(0, 2, 3, 4)), latents.std(dim=(0, 2, 3, 4))
    return {"latents": latents, "captions": captions, "mean": mean, "std": std}


def generate(
    pipeline: MultiviewVideo2WorldPipeline,
    captions: list[str],
    front: torch.Tensor | None,
    options: SamplingOptions,
    seed: int = 1,
) -> torch.Tensor:
    """(B, 3, V*FRAMES, SIZE, SIZE) samples of a batch of scenes, one caption each, with ``front``
    (B, C, LATENT_FRAMES, h, w), the front view's normalized latents, given (the first latent frames
    of the view-major sequence), or nothing given (None: joint Text2World). The pipeline's text and
    decoding, Video2World sampling on a batch."""
    emb = torch.cat([pipeline.view_text(pipeline.view_prompts(c), None)[0] for c in captions])
    shape = (len(captions), *pipeline.view_latent_shape(FRAMES, SIZE, SIZE)[1:])
    if front is None:  # no condition: the condition-mask channel is zero, as in training's n = 0
        z = pipeline.text2world_latents(emb, shape, options=options, seed=seed)
    else:
        z = pipeline.video2world_latents(front, emb, shape, options=options, seed=seed)
    return pipeline.to_video(z)[1]


def summarize(videos: torch.Tensor, truth: torch.Tensor) -> dict:
    """Figures of (B, 3, V*FRAMES, H, W) videos whose front view is given, against the true views
    (through the tokenizer): PSNR of the other views, their error on the true balls' pixels, and the
    ball-detection consistency of all views (``data.view_consistency``)."""
    others = videos.unflatten(2, (len(VIEWS), -1))[:, :, 1:]
    true_others = truth.unflatten(2, (len(VIEWS), -1))[:, :, 1:]
    mse = (others - true_others).square().mean()
    frames = true_others.permute(0, 2, 3, 1, 4, 5).flatten(0, 2)  # (N, 3, H, W)
    balls = torch.stack([label_palette_pixels(frame) >= 0 for frame in frames])  # (N, H, W)
    error = (others - true_others).abs().mean(dim=1).flatten(0, 2)
    scores = [view_consistency(video) for video in videos]
    matched = sum(s.matched for s in scores)
    distance = sum(s.distance * s.matched for s in scores if s.matched) / max(matched, 1)
    return {
        "psnr_other_views_db": round(float(10 * torch.log10(4 / mse)), 2),
        "ball_pixel_error": round(float(error[balls].mean()), 4),
        "detected_distance_px": round(distance, 3),
        "detected_pairs": matched,
        "color_agreement": round(sum(s.color_agreement for s in scores) / len(scores), 4),
    }


def measure(pipeline: MultiviewVideo2WorldPipeline, options: SamplingOptions) -> dict:
    clips = [physics_multiview_clip(FRAMES, SIZE, SIZE, [seed, 1]) for seed in EVAL_SEEDS]
    captions = [text for _, text, _ in clips]
    views = len(VIEWS)
    raw = torch.stack([video for video, _, _ in clips])
    with torch.no_grad():
        latents = encode_views(pipeline.tokenizer, raw, views)
        truth = decode_views(pipeline.tokenizer, latents, views).clamp(-1, 1)
    front = normalize_latents(latents[:, :, :LATENT_FRAMES], pipeline.latent_mean, pipeline.latent_std)
    given = generate(pipeline, captions, front, options)
    weight = pipeline.net.view_embeddings.weight
    original = weight.detach().clone()
    with torch.no_grad():
        weight.copy_(original.roll(1, dims=0))
    try:
        shuffled = generate(pipeline, captions, front, options)
    finally:
        with torch.no_grad():
            weight.copy_(original)
    copies = truth[:, :, :FRAMES].repeat(1, 1, views, 1, 1)
    backgrounds = torch.stack(
        [
            torch.cat([view_video(torch.from_numpy(scene.background)[:, None], v) for v in VIEWS], dim=1)
            for _, _, scene in clips
        ]
    ).repeat_interleave(FRAMES, dim=2)
    backgrounds[:, :, :FRAMES] = truth[:, :, :FRAMES]
    text2world = generate(pipeline, captions, None, options)
    t2w = [view_consistency(video) for video in text2world]
    return {
        "front_given": summarize(given, truth),
        "shuffled_view_embeddings": summarize(shuffled, truth),
        "unmapped_copies_of_front": summarize(copies, truth),
        "background_only": summarize(backgrounds, truth),
        "true_views_before_the_tokenizer": summarize(raw, truth),
        "text2world_joint_detected_pairs": sum(s.matched for s in t2w),
        "eval_scenes": len(captions),
        "eval_seeds": [EVAL_SEEDS.start, EVAL_SEEDS.stop],
        "sampler_steps": options.num_steps,
        "guidance": options.guidance,
    }


def warm_start(config: TrainConfig, text: PerViewText, scenes: LatentScenes, directory: Path) -> Path:
    """A trainer checkpoint (written after one step, then overwritten) of the multi-view network with
    the shipped tiny world Video2World DiT's weights, as Cosmos post-trains its multi-view model from
    the single-view one: every key the two
    share, the patch embedding's first 18 input channels ([x | condition mask | padding mask], the same
    order in both) and zero for the new view channels; the single-view learnable position tables have
    no multi-view counterpart (it uses the fixed sin-cos embedding) and are dropped."""
    result = train(config, text, output_dir=directory, datasets=lambda s, d: scenes, stop_after=1)
    single, _, _, _ = load_tiny_world("video2world")
    shipped = single.state_dict()
    for name in (MODEL_FILE, EMA_FILE):
        path = result.checkpoint / name
        weights = safetensors.torch.load_file(path)
        for key, value in weights.items():
            ours = key.removeprefix("net.")
            if not key.startswith("net.") or ours not in shipped:
                continue
            source = shipped[ours]
            if ours == "x_embedder.proj.1.weight":
                value = torch.zeros_like(value)
                value[:, : source.shape[1]] = source
            weights[key] = source.to(value.dtype) if source.shape == value.shape else value
        safetensors.torch.save_file(weights, path, metadata={"format": "pt"})
    return result.checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--scenes", type=int, default=2048, help="training scenes")
    parser.add_argument("--steps", type=int, default=4500)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--guidance", type=float, default=1.0)
    parser.add_argument("--sampler-steps", type=int, default=15)
    parser.add_argument(
        "--warm-start",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start from the shipped tiny world DiT (see warm_start)",
    )
    parser.add_argument("--figures", type=Path, default=FIGURES, help="where the README's JSON goes")
    args = parser.parse_args()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # see scripts/train_tiny_world_model.py: one thread is steady on 2 shared cores
    timings = {}

    # The tiny world's tokenizer and latent statistics, which its DiT (the warm start) was trained with.
    _, tokenizer, mean, std = load_tiny_world("text2world")
    pool_path = out / "latents.pt"
    if not pool_path.exists():
        start = time.time()
        torch.save(encode_pool(tokenizer, args.scenes), pool_path)
        timings["encode_s"] = round(time.time() - start)
    pool = torch.load(pool_path)
    stats_path = out / "mean_std.pt"
    torch.save((mean, std), stats_path)

    config = TrainConfig(
        stages=(
            Stage(
                resolution=SIZE,
                frames=FRAMES,
                steps=args.steps,
                lr=args.lr,
                batch_size=args.batch,
                warmup_steps=100,
            ),
        ),
        model=MODEL,
        model_overrides=DIT_OVERRIDES,
        tokenizer=None,
        latent_stats={"video": str(stats_path)},
        data=DataConfig(source="physics", length=1),
        weight_decay=0.0,
        precision="fp32",
        video2world=True,
        min_condition_frames=0,
        max_condition_frames=LATENT_FRAMES,
        condition_dropout=0.1,
        checkpoint_every=500,
    )
    text = PerViewText(HashTextEncoder(max_length=TEXT_TOKENS), len(VIEWS))
    scenes = LatentScenes(pool["latents"], pool["captions"])
    start = time.time()
    if args.warm_start:
        init = warm_start(config, text, scenes, out / "warm_start")
        config = dataclasses.replace(config, init_checkpoint=str(init))
    result = train(config, text, output_dir=out, resume="latest", datasets=lambda s, d: scenes)
    timings["train_s"] = round(time.time() - start)
    print(f"trained to step {result.step}", flush=True)

    net = build_dit(MODEL, **DIT_OVERRIDES)
    result.ema.copy_to(net)
    pipeline = MultiviewVideo2WorldPipeline(
        net.eval(),
        HashTextEncoder(max_length=TEXT_TOKENS),
        tokenizer,
        latent_mean=mean,
        latent_std=std,
    )
    start = time.time()
    figures = measure(pipeline, SamplingOptions(num_steps=args.sampler_steps, guidance=args.guidance))
    timings["measure_s"] = round(time.time() - start)
    report = {
        "model": MODEL,
        "dit_overrides": DIT_OVERRIDES,
        "parameters": sum(p.numel() for p in net.parameters()),
        "warm_start_from_tiny_world": args.warm_start,
        "views": list(VIEWS),
        "frames_per_view": FRAMES,
        "size": SIZE,
        "training": {
            "scenes": args.scenes,
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            **timings,
        },
        "figures": figures,
    }
    for path in (out / "tiny_multiview.json", args.figures):
        path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
