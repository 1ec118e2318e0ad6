"""Benchmark cases for diffusers' Cosmos models, unpatched and patched by ``apply_cosmos_kernels``.

Beside ``benchmarking`` in the tools layer: it imports the integration, never the reverse.
``cosmos_kernels.tools.benchmarking.cases`` adds these when diffusers is installed and they are asked for by
name, so ``cosmos-kernels bench --only diffusers`` and ``BENCH_ONLY=diffusers benchmarks/device_run.sh``
run them (the default run and the pytest-benchmark suite time our ops only). The "ours+compile" peer
compiles even under ``--no-compile``. Each case is one diffusers module on diffusers' own weights
(random): "ours" is the patched copy, "eager" the unpatched module, "torch.compile" the compiled
unpatched module, and the peer "ours+compile" the compiled patched copy. The shapes are Cosmos's:

Each block runs in a one-block ``CosmosTransformer3DModel`` forward (see :func:`block_case`).

- a Cosmos-1.0-7B block (4096 wide, 32 heads, learnable extra position embedding) on the 121-frame
  720p grid, 16 x 44 x 80 = 56,320 tokens, 512 T5 tokens;
- a Predict2-2B block (2048 wide, 16 heads) on the 93-frame 720p grid of the Wan VAE (4x temporal),
  24 x 44 x 80 = 84,480 tokens, with Predict2's per-frame timesteps, which diffusers' forward repeats
  over every token as modulation rows and the patched block computes once per frame;
- the Cosmos-1.0 CV8x8x8 VAE (``AutoencoderKLCosmos``) encoding and decoding a 121-frame 720p clip;
- the Wan VAE's RMS norm (Predict2/2.5) on its widest 720p activation, 4 frames (one cache chunk),
  alone and with the SiLU that follows it in the residual blocks (fused when patched).
"""

import copy
import functools
import math
from collections.abc import Callable

import torch

from cosmos_kernels.integrations.diffusers import apply_cosmos_kernels, patch_report
from cosmos_kernels.tools.benchmarking import Case

Tensor = torch.Tensor
TEXT_TOKENS = 512
TEXT_DIM = 1024


def _on_backend(patched: torch.nn.Module, backend: str) -> torch.nn.Module:
    """``patched`` with its ops on ``backend``: re-patched only when the backend changes (the timing's
    warm-up call pays for it), so one copy of the weights serves every backend."""
    if patch_report(patched) is None or getattr(patched, "_bench_backend", None) != backend:
        apply_cosmos_kernels(patched, backend=backend)
        patched._bench_backend = backend
    return patched


def _label(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _block_flops(seq: int, dim: int, text_tokens: int) -> int:
    linear = 2 * seq * dim * dim * (4 + 2 + 8) + 2 * 2 * text_tokens * TEXT_DIM * dim
    attention = 4 * seq * seq * dim + 4 * seq * text_tokens * dim
    return linear + attention


def block_case(
    name: str,
    grid: tuple[int, int, int],
    dim: int,
    heads: int,
    dtype: torch.dtype,
    device: str,
    *,
    learnable_pos_embed: bool,
    per_frame_timesteps: bool,
) -> Case:
    """A one-block ``CosmosTransformer3DModel`` forward at a (T, H, W) token grid, unpatched vs patched.

    The whole model runs, not the block alone, since that is where diffusers' blocks run: its forward
    makes the RoPE tables, the extra position embedding and, with per-frame timesteps, the per-token
    modulation rows, and only there do the patched blocks know the frame layout (one modulation row
    per frame). Patch embedding, timestep embedding and the final layer are a few percent of a block."""
    import diffusers

    model = diffusers.CosmosTransformer3DModel(
        in_channels=17 if per_frame_timesteps else 16,  # Predict2 counts the condition-mask channel
        out_channels=16,
        num_attention_heads=heads,
        attention_head_dim=dim // heads,
        num_layers=1,
        text_embed_dim=TEXT_DIM,
        rope_scale=(2.0, 1.0, 1.0) if learnable_pos_embed else (1.0, 3.0, 3.0),
        extra_pos_embed_type="learnable" if learnable_pos_embed else None,
        # Cosmos's models concatenate a padding-mask channel, which diffusers resizes with torchvision:
        # one input channel of the patch embedding, left out so that the case runs without torchvision.
        concat_padding_mask=False,
    ).to(device, dtype)
    model.eval()
    patched = apply_cosmos_kernels(copy.deepcopy(model))
    frames, height, width = grid[0], 2 * grid[1], 2 * grid[2]

    def make() -> tuple[Tensor, ...]:
        latents = torch.randn(1, 16, frames, height, width, dtype=dtype, device=device)
        text = torch.randn(1, TEXT_TOKENS, TEXT_DIM, dtype=dtype, device=device)
        if not per_frame_timesteps:
            return latents, text, torch.full((1,), 0.5, dtype=dtype, device=device)
        # Predict2's Video2World: the given first frame at a small sigma, the others at the step's.
        timestep = torch.full((1, 1, frames, 1, 1), 0.5, dtype=dtype, device=device)
        timestep[:, :, 0] = 1e-4
        condition_mask = torch.zeros(1, 1, frames, height, width, dtype=dtype, device=device)
        condition_mask[:, :, 0] = 1
        return latents, text, timestep, condition_mask

    def call(
        module: torch.nn.Module, latents: Tensor, text: Tensor, timestep: Tensor, condition_mask=None
    ) -> Tensor:
        with torch.no_grad():
            return module(
                latents,
                timestep,
                text,
                fps=24,
                condition_mask=condition_mask,
                return_dict=False,
            )[0]

    def ours(*inputs: Tensor, backend: str) -> Tensor:
        return call(_on_backend(patched, backend), *inputs)

    compiled_patched = torch.compile(patched)

    def ours_compiled(*inputs: Tensor) -> Tensor:
        _on_backend(patched, "auto")
        return call(compiled_patched, *inputs)

    return Case(
        name=f"diffusers {name} block fwd",
        shape=f"{_label(grid)} tokens, D={dim}, {TEXT_TOKENS} text",
        bytes_moved=0,
        inputs=[make()],
        op=ours,
        eager=functools.partial(call, model),
        compiled=functools.partial(call, torch.compile(model)),
        flops=_block_flops(math.prod(grid), dim, TEXT_TOKENS),
        peers={"ours+compile": ours_compiled},
    )


def vae_case(
    video_shape: tuple[int, ...], dtype: torch.dtype, device: str, *, decode: bool, small: bool
) -> Case:
    """``AutoencoderKLCosmos`` (CV8x8x8 config, random weights) encoding or decoding one clip."""
    import diffusers

    config = {}
    if small:
        config = dict(encoder_block_out_channels=(8, 16, 32, 32), decode_block_out_channels=(16, 32, 32, 32))
    vae = diffusers.AutoencoderKLCosmos(**config).to(device, dtype).eval()
    patched = apply_cosmos_kernels(copy.deepcopy(vae))
    video = torch.rand(video_shape, device=device, dtype=dtype) * 2 - 1
    with torch.no_grad():
        latents = vae.encode(video).latent_dist.mode()

    def run(model, x: Tensor) -> Tensor:
        with torch.no_grad():
            return model.decode(x).sample if decode else model.encode(x).latent_dist.mode()

    def ours(x: Tensor, *, backend: str) -> Tensor:
        return run(_on_backend(patched, backend), x)

    def compiled(model: torch.nn.Module) -> Callable[[Tensor], Tensor]:
        fn = torch.compile(model.decoder if decode else model.encoder, dynamic=False)

        def call(x: Tensor) -> Tensor:
            if model is patched:
                _on_backend(patched, "auto")
            with torch.no_grad():
                return fn(model.post_quant_conv(x)) if decode else model.quant_conv(fn(x))

        return call

    return Case(
        name=f"diffusers cv8x8x8 {'decode' if decode else 'encode'}",
        shape=_label(video_shape),
        bytes_moved=0,
        frames=video_shape[2],
        inputs=[(latents,) if decode else (video,)],
        op=ours,
        eager=functools.partial(run, vae),
        compiled=compiled(vae),
        peers={"ours+compile": compiled(patched)},
    )


def wan_rms_norm_case(shape: tuple[int, ...], dtype: torch.dtype, device: str, *, silu: bool) -> Case:
    """diffusers' ``WanRMS_norm`` (the Wan VAE's norm, per frame chunk), then its owner's SiLU when
    ``silu``, against ``rms_norm_channels_silu`` as the patched VAE runs it."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    from cosmos_kernels import ops

    norm = WanRMS_norm(shape[1], images=False).to(device, dtype)
    with torch.no_grad():
        norm.gamma.normal_()
    x = torch.randn(shape, device=device, dtype=dtype)

    def ours(x: Tensor, *, backend: str) -> Tensor:
        return ops.rms_norm_channels_silu(x, norm.gamma.reshape(-1), silu=silu, backend=backend)

    def eager(x: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.nn.functional.silu(norm(x)) if silu else norm(x)

    return Case(
        name=f"diffusers wan rms_norm{'+silu' if silu else ''}",
        shape=_label(shape),
        bytes_moved=2 * x.numel() * x.element_size(),
        inputs=[(x,)],
        op=ours,
        eager=eager,
    )


def diffusers_cases(size: str, dtype: torch.dtype, device: str) -> dict[str, Callable[[], Case]]:
    """Case builders by name, at the Cosmos shapes (``size="cosmos"``) or small ones."""
    if size == "cosmos":
        grids, blocks, clip, small = ((16, 44, 80), (24, 44, 80)), ((4096, 32), (2048, 16)), None, False
        clip = (1, 3, 121, 704, 1280)
    elif device == "cpu":
        grids, blocks, clip, small = ((2, 8, 8), (2, 8, 8)), ((128, 2), (128, 2)), (1, 3, 9, 32, 32), True
    else:
        grids, blocks, clip, small = (
            ((4, 32, 64), (8, 32, 64)),
            ((4096, 32), (2048, 16)),
            (1, 3, 17, 256, 256),
            False,
        )
    (grid_7b, grid_2b), (block_7b, block_2b) = grids, blocks
    # The Wan VAE's widest activation of a 720p clip, one 4-frame chunk of its causal cache.
    wan_shape = (1, 96, 4, 704, 1280) if size == "cosmos" else (1, 16, 2, 32, 32)
    return {
        "diffusers cosmos1-7b block fwd": lambda: block_case(
            "cosmos1-7b",
            grid_7b,
            *block_7b,
            dtype,
            device,
            learnable_pos_embed=True,
            per_frame_timesteps=False,
        ),
        "diffusers predict2-2b block fwd": lambda: block_case(
            "predict2-2b",
            grid_2b,
            *block_2b,
            dtype,
            device,
            learnable_pos_embed=False,
            per_frame_timesteps=True,
        ),
        "diffusers wan rms_norm": lambda: wan_rms_norm_case(wan_shape, dtype, device, silu=False),
        "diffusers wan rms_norm+silu": lambda: wan_rms_norm_case(wan_shape, dtype, device, silu=True),
        "diffusers cv8x8x8 encode": lambda: vae_case(clip, dtype, device, decode=False, small=small),
        "diffusers cv8x8x8 decode": lambda: vae_case(clip, dtype, device, decode=True, small=small),
    }
