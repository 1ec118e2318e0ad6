"""A whole diffusers Cosmos-1.0 Text2World pipeline, unpatched and patched with one call, timed per step.

    python examples/diffusers_cosmos_patched.py                      # tiny, CPU, seconds
    python examples/diffusers_cosmos_patched.py --device cuda --dtype bfloat16 --width 4096 \
        --heads 32 --layers 4 --height 704 --video-width 1280 --frames 121   # 7B-wide blocks on a GPU

Everything is built from configs with random weights; nothing is downloaded. The text encoder is a
tiny T5 from a config and the prompts come in as embeddings (no tokenizer files are needed), and the
safety checker is a pass-through stand-in: with random weights there is nothing to check. The video is
noise; the point is the time per denoising step, unpatched and with ``apply_cosmos_kernels``.

On CPU our ops run their PyTorch reference (``backend="auto"`` never picks the Triton interpreter),
so the CPU numbers only show that the patched pipeline runs end to end; the speed-up is a GPU matter.
"""

import argparse
import itertools
import time

import diffusers
import torch
import torch.nn.functional as F
from diffusers.models.transformers import transformer_cosmos
from transformers import T5Config, T5EncoderModel

from cosmos_kernels.integrations.diffusers import apply_cosmos_kernels, patch_report


class PassThroughSafetyChecker:
    """Stands in for cosmos_guardrail's checker, which needs its own downloaded models."""

    def to(self, *args, **kwargs) -> "PassThroughSafetyChecker":
        return self

    def check_text_safety(self, prompt: str) -> bool:
        return True

    def check_video_safety(self, video: object) -> object:
        return video


def _nearest_resize(img: torch.Tensor, size: list[int], interpolation: str = "nearest") -> torch.Tensor:
    return F.interpolate(img, size=size, mode=interpolation)


def ensure_padding_mask_resize() -> None:
    """diffusers resizes the padding mask with torchvision; where none is installed (no build matches
    some pinned torch versions), give its module the same nearest resize from torch."""
    if not hasattr(transformer_cosmos, "transforms"):
        transformer_cosmos.transforms = argparse.Namespace(
            functional=argparse.Namespace(resize=_nearest_resize),
            InterpolationMode=argparse.Namespace(NEAREST="nearest"),
        )


def build_pipeline(args: argparse.Namespace) -> diffusers.CosmosTextToWorldPipeline:
    torch.manual_seed(0)
    text_dim = 64
    transformer = diffusers.CosmosTransformer3DModel(
        in_channels=16,
        out_channels=16,
        num_attention_heads=args.heads,
        attention_head_dim=args.width // args.heads,
        num_layers=args.layers,
        text_embed_dim=text_dim,
        adaln_lora_dim=min(256, args.width // 4),
    )
    vae = diffusers.AutoencoderKLCosmos(
        latent_channels=16,
        encoder_block_out_channels=(16, 32, 64, 64),
        decode_block_out_channels=(32, 64, 64, 64),
        num_layers=1,
        latents_mean=None,
        latents_std=None,
    )
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=32, d_model=text_dim, d_kv=16, d_ff=128, num_layers=1, num_heads=4)
    )
    scheduler = diffusers.EDMEulerScheduler(
        sigma_min=0.002, sigma_max=80, sigma_data=0.5, sigma_schedule="karras", prediction_type="epsilon"
    )
    pipe = diffusers.CosmosTextToWorldPipeline(
        text_encoder=text_encoder,
        tokenizer=None,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        safety_checker=PassThroughSafetyChecker(),
    )
    pipe.to(args.device)
    if args.dtype != "float32":
        # diffusers keeps learnable_pos_embed in float32 when loading; casting a built model warns.
        pipe.to(dtype=getattr(torch, args.dtype))
    return pipe


def step_times(pipe, args: argparse.Namespace) -> list[float]:
    """Seconds per denoising step (each step runs the transformer twice: guided and unguided)."""
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(1)
    embeds = torch.randn(1, 16, 64, device=args.device, dtype=dtype)
    marks = []

    def mark(pipeline, step, timestep, kwargs):
        if args.device == "cuda":
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        return kwargs

    start = time.perf_counter()
    pipe(
        prompt_embeds=embeds,
        negative_prompt_embeds=torch.zeros_like(embeds),
        height=args.height,
        width=args.video_width,
        num_frames=args.frames,
        num_inference_steps=args.steps,
        output_type="latent",
        callback_on_step_end=mark,
        generator=torch.Generator(args.device).manual_seed(2),
    )
    stamps = [start, *marks]
    return [b - a for a, b in itertools.pairwise(stamps)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--width", type=int, default=128, help="model width (heads x head dim)")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--height", type=int, default=64, help="video height in pixels")
    parser.add_argument("--video-width", type=int, default=64, help="video width in pixels")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    ensure_padding_mask_resize()
    pipe = build_pipeline(args)
    results = {}
    for name in ("unpatched", "patched"):
        if name == "patched":
            apply_cosmos_kernels(pipe)
            print(patch_report(pipe))
        step_times(pipe, args)  # warm-up: allocator, kernel autotuning
        times = step_times(pipe, args)
        # The first step also holds the prompt/latent preparation: report the later ones.
        results[name] = sorted(times[1:] or times)[len(times[1:] or times) // 2]
        print(f"{name:>9}: {results[name] * 1e3:8.1f} ms per step (median of {len(times)} steps)")
    print(f"  speed-up: {results['unpatched'] / results['patched']:.2f}x on {args.device} ({args.dtype})")


if __name__ == "__main__":
    main()
