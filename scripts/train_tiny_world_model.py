"""Train a tiny world model end to end on CPU, in minutes: tokenizer, latent statistics, DiT, a sample.

1. trains the tiny CV8x8x8 tokenizer on moving shapes (``models.tokenizer_training``) and saves it;
2. measures its latents' per-channel mean and std on physics clips, saved as Cosmos's ``mean_std.pt``;
3. trains the tiny DiT with ``training.train`` on the synthetic physics clips (``training.tiny_config``:
   9 frames at 32 px, then 17 frames at 48 px, a quarter of the batches images), captions through the
   deterministic hash text encoder, and plots the loss curve;
4. samples a 17-frame 48x48 clip for a caption with the EMA weights (Text2World, Euler, CFG 7).

    python scripts/train_tiny_world_model.py --output-dir runs/tiny --steps 400

Everything goes to OUTPUT_DIR: tokenizer.safetensors, mean_std.pt, train_log.jsonl, loss.png,
checkpoints/, sample.mp4 (sample.pt without PyAV).
"""

import argparse
import dataclasses
from pathlib import Path

import safetensors.torch
import torch

from cosmos_kernels import video_io
from cosmos_kernels.data import physics_batch
from cosmos_kernels.models import build_dit, build_tokenizer
from cosmos_kernels.models.tokenizer_training import train_tokenizer
from cosmos_kernels.pipelines import HashTextEncoder, SamplingOptions, Text2WorldPipeline
from cosmos_kernels.training import plot_losses, tiny_config, train


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=400, help="DiT steps over both stages")
    parser.add_argument("--tokenizer-steps", type=int, default=300)
    parser.add_argument("--sample-steps", type=int, default=35, help="sampler steps")
    parser.add_argument("--prompt", default="a red ball bounces to the right")
    args = parser.parse_args()
    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    tokenizer = build_tokenizer("tiny-cv8x8x8")
    losses = train_tokenizer(tokenizer, args.tokenizer_steps, frames=9, size=(32, 32))
    print(f"tokenizer: L1 + MSE {losses[0]:.4f} -> {losses[-1]:.4f} in {len(losses)} steps")
    safetensors.torch.save_file(tokenizer.state_dict(), out / "tokenizer.safetensors")

    with torch.no_grad():
        video, _ = physics_batch(16, 17, 48, 48, seed=1)
        latents = tokenizer.encode(video)
    mean, std = latents.mean(dim=(0, 2, 3, 4)), latents.std(dim=(0, 2, 3, 4))
    torch.save((mean, std), out / "mean_std.pt")

    stats = str(out / "mean_std.pt")
    config = dataclasses.replace(
        tiny_config(args.steps),
        tokenizer_checkpoint=str(out / "tokenizer.safetensors"),
        latent_stats={"video": stats, "image": stats},
    )
    text = HashTextEncoder()
    result = train(config, text, output_dir=out, resume="latest")
    print(f"DiT: trained to step {result.step}; loss curve {plot_losses(result.log_path, out / 'loss.png')}")

    net = build_dit(config.model, **config.model_overrides)
    result.ema.copy_to(net)
    pipeline = Text2WorldPipeline(net.eval(), text, tokenizer.eval(), latent_mean=mean, latent_std=std)
    options = SamplingOptions(num_steps=args.sample_steps)
    sample = pipeline(args.prompt, num_frames=17, height=48, width=48, options=options, seed=1)
    try:
        video_io.write_video(out / "sample.mp4", video_io.from_model(sample.video), fps=24)
        print(f"sample: {out / 'sample.mp4'} ({args.prompt!r})")
    except ImportError:
        torch.save(sample.video, out / "sample.pt")
        print(f"sample: {out / 'sample.pt'} (no PyAV to write an mp4)")


if __name__ == "__main__":
    main()
