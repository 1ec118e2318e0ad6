"""Train the tiny diffusion decoder shipped in ``cosmos_kernels/assets/tiny_decoder/``, on CPU, and measure
whether discrete tokens -> diffusion decoder -> CV tokenizer beats the discrete tokenizer's own decode.

1. dv_tokenizer: the tiny DV8x16x16 tokenizer (``build_tokenizer("tiny-dv8x16x16")``: 2x2 tokens of
   64,000 FSQ codes per latent frame of a 32x32 clip) trained with ``training.train_tokenizer`` on fresh
   physics clips every step (DV_PHASES), ball pixels weighted as for the tiny world model's tokenizer;
2. pool: encodes a pool of 17-frame 32x32 training clips once, to DV token indices (3 x 2 x 2) and to
   CV latents (16 x 3 x 4 x 4) of the tiny world model's CV8x8x8 tokenizer (``models.tiny_world``,
   shipped, frozen), normalized with its latent statistics;
3. decoder: trains the "tiny-decoder" network (DECODER_OVERRIDES) with ``training.train`` on the pool:
   EDM on the CV latents, conditioned on the DV tokens (dropped to index 0 at ``token_dropout`` 0.2, as
   Cosmos's conditioner does) and on Cosmos's generic prompt (dropped at ``text_dropout`` 0.2);
4. measure and ship: on held-out clips (EVAL_SEEDS), PSNR / SSIM / balls found of the DV decode, of
   ``DiffusionDecoderPipeline`` (Cosmos's sampling: 15 Euler steps, guidance 1.8; one window of the
   clip's 3 latent frames) and, as the ceiling, of the CV tokenizer's own reconstruction; writes the
   weights (float16) and tiny_decoder.json with the figures to OUTPUT_DIR/tiny_decoder (``--install``:
   also into the package).

    nice -n 10 python scripts/train_tiny_diffusion_decoder.py --output-dir runs/tiny_decoder --install

Each phase reuses its output when present (delete the file to redo it); the decoder resumes from its
latest checkpoint. Timings are in the manifest.
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
from cosmos_kernels.metrics import psnr, ssim
from cosmos_kernels.models import build_dit, build_tokenizer, load_tiny_world
from cosmos_kernels.models.tiny_decoder import (
    DECODER_FILE,
    DV_TOKENIZER_FILE,
    MANIFEST_FILE,
    load_tiny_decoder,
    tiny_decoder_dir,
)
from cosmos_kernels.pipelines import (
    DecoderSamplingOptions,
    DiffusionDecoderPipeline,
    HashTextEncoder,
)
from cosmos_kernels.pipelines.diffusion_decoder import GENERIC_PROMPT
from cosmos_kernels.pipelines.evaluation import detect_balls
from cosmos_kernels.training import (
    DataConfig,
    Stage,
    TokenizerPhase,
    TrainConfig,
    physics_tokenizer_batch,
    train,
    train_tokenizer,
)

SIZE, FRAMES = 32, 17  # latents: 3 frames of 4x4 (CV8x8x8), tokens: 3 frames of 2x2 (DV8x16x16)
DV_TOKENIZER = "tiny-dv8x16x16"
DV_OVERRIDES: dict = {}
# (steps, peak lr, weight of the ball pixels, frames, clips per step): the tiny world model's CV recipe,
# shortened: ball positions come in the first phase, their colors in the second, the third latent frame
# (frames 10-17) in the last. After 4,800 clips (an earlier 1,200-step run) its decode showed no ball;
# after these 4,500 steps it shows 4%, and the decoder reads more from the tokens (14.89 against 14.67 dB
# at guidance 1.8 with 1024 clips and 3000 steps).
DV_PHASES = tuple(
    TokenizerPhase(*phase)
    for phase in ((1500, 1e-3, 8.0, 9, 16), (1500, 5e-4, 16.0, 9, 16), (1500, 3e-4, 16.0, 17, 8))
)
LATENT_TIE = 1.0  # the codes' first channels tied to 16x16-pooled frames, against collapse
DECODER_OVERRIDES = {"model_channels": 128, "num_blocks": 4, "num_heads": 4, "max_img_h": 8, "max_img_w": 8}
TEXT_TOKENS = 8
SAMPLING = {"num_steps": 15, "guidance": 1.8, "window": 3, "overlap": 1}
TRAIN_SEED = 0  # decoder training clips: physics_clip(FRAMES, SIZE, SIZE, [TRAIN_SEED, i])
EVAL_SEEDS = range(10_000, 10_064)  # held out: physics_clip(..., [seed, 1]), as the tiny world model


def train_dv_tokenizer(path: Path) -> None:
    torch.manual_seed(0)
    tokenizer = build_tokenizer(DV_TOKENIZER, **DV_OVERRIDES)
    start = time.time()

    def log(step: int, loss: float) -> None:
        if step % 100 == 0:
            print(f"dv tokenizer step {step}: loss {loss:.4f} ({time.time() - start:.0f} s)", flush=True)

    batches = functools.partial(physics_tokenizer_batch, size=(SIZE, SIZE))
    train_tokenizer(tokenizer, DV_PHASES, batches=batches, latent_tie=LATENT_TIE, on_step=log)
    safetensors.torch.save_file(tokenizer.state_dict(), path)


def load_dv_tokenizer(path: Path) -> torch.nn.Module:
    tokenizer = build_tokenizer(DV_TOKENIZER, **DV_OVERRIDES)
    tokenizer.load_state_dict(safetensors.torch.load_file(path))
    return tokenizer.eval()


def encode_pool(dv: torch.nn.Module, cv: torch.nn.Module, path: Path, clips: int) -> None:
    latents, tokens = [], []
    with torch.no_grad():
        for start in range(0, clips, 32):
            seeds = [[TRAIN_SEED, i] for i in range(start, min(start + 32, clips))]
            videos = torch.stack([physics_clip(FRAMES, SIZE, SIZE, seed)[0] for seed in seeds])
            latents.append(cv.encode(videos))
            tokens.append(dv.encode(videos))
    torch.save({"latents": torch.cat(latents), "tokens": torch.cat(tokens)}, path)


class TokenLatentClips(torch.utils.data.Dataset):
    """The pool as the trainer's samples: CV latents, their DV tokens and the generic prompt."""

    def __init__(self, latents: torch.Tensor, tokens: torch.Tensor) -> None:
        self.latents, self.tokens = latents, tokens

    def __len__(self) -> int:
        return len(self.latents)

    def bucket_key(self, index: int) -> tuple[str, int]:
        return "1,1", FRAMES

    def __getitem__(self, index: int) -> dict:
        return {
            "latent": self.latents[index],
            "token_indices": self.tokens[index].long(),
            "caption": GENERIC_PROMPT,
            "padding_mask": torch.zeros(1, SIZE, SIZE),
            "fps": 24.0,
        }


def decoder_config(steps: int, lr: float, batch: int, stats: Path) -> TrainConfig:
    return TrainConfig(
        stages=(
            Stage(resolution=SIZE, frames=FRAMES, steps=steps, lr=lr, batch_size=batch, warmup_steps=100),
        ),
        model="tiny-decoder",
        model_overrides=DECODER_OVERRIDES,
        tokenizer=None,
        latent_stats={"video": str(stats)},
        data=DataConfig(source="physics", length=1),
        # The token embedding's unused rows stay at their zero init without weight decay pulling the rest.
        weight_decay=0.0,
        precision="fp32",  # bfloat16 autocast is slower than float32 on most CPUs
        checkpoint_every=500,
    )


def _scores(decoded: torch.Tensor, truth: torch.Tensor) -> dict:
    """PSNR, SSIM (mean over frames) and the balls found (per frame, by color) with their position error."""
    found = balls = 0
    error = 0.0
    for b in range(len(truth)):
        for k in range(truth.shape[2]):
            want, seen = detect_balls(truth[b, :, k]), detect_balls(decoded[b, :, k])
            balls += len(want)
            for color, (x, y) in want.items():
                if color in seen:
                    found += 1
                    error += ((seen[color][0] - x) ** 2 + (seen[color][1] - y) ** 2) ** 0.5
    frames = truth.shape[2]
    return {
        "psnr": psnr(decoded, truth),
        "ssim": sum(ssim(decoded[:, :, k], truth[:, :, k]) for k in range(frames)) / frames,
        "balls_found": found / max(balls, 1),
        "position_error_found": error / max(found, 1),
    }


@torch.no_grad()
def measure(ship: Path) -> dict:
    model = load_tiny_decoder(ship)
    pipeline = DiffusionDecoderPipeline(
        model.net,
        model.dv_tokenizer,
        model.cv_tokenizer,
        model.text_encoder,
        latent_mean=model.latent_mean,
        latent_std=model.latent_std,
    )
    truth = torch.stack([physics_clip(FRAMES, SIZE, SIZE, [seed, 1])[0] for seed in EVAL_SEEDS])
    names = ("dv_decode", "diffusion_decoder", "guidance_0", "cv")
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    cosmos = DecoderSamplingOptions(**SAMPLING)
    unguided = dataclasses.replace(cosmos, guidance=0.0)
    for start in range(0, len(truth), 16):
        videos = truth[start : start + 16]
        tokens = model.dv_tokenizer.encode(videos)
        outputs["dv_decode"].append(model.dv_tokenizer.decode(tokens).float().clamp(-1, 1))
        outputs["diffusion_decoder"].append(pipeline(tokens, GENERIC_PROMPT, options=cosmos, seed=start + 1))
        outputs["guidance_0"].append(pipeline(tokens, GENERIC_PROMPT, options=unguided, seed=start + 1))
        outputs["cv"].append(model.cv_tokenizer.decode(model.cv_tokenizer.encode(videos)).clamp(-1, 1))
    figures = {name: _scores(torch.cat(parts), truth) for name, parts in outputs.items()}
    return {
        "dv_decode": figures["dv_decode"],
        "diffusion_decoder": figures["diffusion_decoder"],
        "diffusion_decoder_guidance_0": figures["guidance_0"],
        "cv_tokenizer_reconstruction": figures["cv"],
        "psnr_gain_db": figures["diffusion_decoder"]["psnr"] - figures["dv_decode"]["psnr"],
        "eval_seeds": [EVAL_SEEDS.start, EVAL_SEEDS.stop],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--clips", type=int, default=8192, help="decoder training clips")
    parser.add_argument("--steps", type=int, default=12_000, help="decoder steps")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--install", action="store_true", help="also copy the result into the package")
    args = parser.parse_args()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    # One thread: on a shared 2-core machine two OpenMP threads wait on each other.
    torch.set_num_threads(1)
    timings_path = out / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}

    dv_path = out / DV_TOKENIZER_FILE
    if not dv_path.exists():
        start = time.time()
        train_dv_tokenizer(dv_path)
        timings["dv_tokenizer_s"] = round(time.time() - start)
        timings_path.write_text(json.dumps(timings))
    dv = load_dv_tokenizer(dv_path)
    _, cv, mean, std = load_tiny_world("text2world")

    pool_path, stats_path = out / "pool.pt", out / "mean_std.pt"
    if not pool_path.exists():
        encode_pool(dv, cv, pool_path, args.clips)
    pool = torch.load(pool_path)
    torch.save((mean, std), stats_path)

    config = decoder_config(args.steps, args.lr, args.batch, stats_path)
    clips = TokenLatentClips(pool["latents"], pool["tokens"])
    start = time.time()
    text = HashTextEncoder(max_length=TEXT_TOKENS)
    result = train(config, text, output_dir=out, resume="latest", datasets=lambda s, d: clips)
    # Summed over the runs that resumed this one.
    timings["decoder_s"] = timings.get("decoder_s", 0) + round(time.time() - start)
    timings_path.write_text(json.dumps(timings))
    print(f"decoder: trained to step {result.step}")

    net = build_dit(config.model, **config.model_overrides)
    result.ema.copy_to(net)
    ship = out / "tiny_decoder"
    ship.mkdir(exist_ok=True)
    # float16 halves the files; the figures below are measured with the rounded weights.
    for module, file in ((net, DECODER_FILE), (dv, DV_TOKENIZER_FILE)):
        half = {k: v.half().contiguous() for k, v in module.state_dict().items()}
        safetensors.torch.save_file(half, ship / file)
    manifest = {
        "decoder_overrides": DECODER_OVERRIDES,
        "dv_tokenizer": DV_TOKENIZER,
        "dv_tokenizer_overrides": DV_OVERRIDES,
        "cv_tokenizer": "the tiny world model's (models.tiny_world)",
        "text_tokens": TEXT_TOKENS,
        "prompt": GENERIC_PROMPT,
        "size": SIZE,
        "num_frames": FRAMES,
        "sampling": SAMPLING,
        "training": {
            "dv_phases": [dataclasses.astuple(phase) for phase in DV_PHASES],
            "dv_latent_tie": LATENT_TIE,
            "decoder_steps": args.steps,
            "decoder_batch": args.batch,
            "text_dropout": config.text_dropout,
            "token_dropout": config.token_dropout,
            "clips": args.clips,
            **timings,
        },
    }
    (ship / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    manifest["figures"] = measure(ship)
    (ship / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(manifest["figures"], indent=2))
    if args.install:
        shutil.copytree(ship, tiny_decoder_dir(), dirs_exist_ok=True)
        print(f"installed into {tiny_decoder_dir()}")


if __name__ == "__main__":
    main()
