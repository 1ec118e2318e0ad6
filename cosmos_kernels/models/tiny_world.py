"""The tiny world model shipped with the package: a tokenizer and a Video2World DiT trained on CPU on
the synthetic physics clips (``data.physics``) by ``scripts/train_tiny_world_model.py``.

The files live in ``cosmos_kernels/assets/tiny_world/``: ``tokenizer.safetensors`` (the tiny
CV8x8x8 tokenizer, Cosmos key names), ``video2world.safetensors`` (the EMA weights of the DiT),
``latent_stats.safetensors`` (per-channel latent mean and std) and ``tiny_world.json`` (the configs'
overrides, the frame size the model was trained at and the figures measured on held-out clips).

One network serves both tasks. It was trained as Video2World with 0, 1 or 2 given latent frames; with
none given, its condition-mask input channel is zero everywhere, so dropping that channel's columns
from the patch embedding gives a Text2World network computing the same function.
"""

import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

import cosmos_kernels
from cosmos_kernels.models.dit import GeneralDIT, build_dit
from cosmos_kernels.models.text_encoders import HashTextEncoder
from cosmos_kernels.models.tokenizer import ContinuousTokenizer, build_tokenizer

Tensor = torch.Tensor

KINDS = ("text2world", "video2world")
TOKENIZER_FILE = "tokenizer.safetensors"
DIT_FILE = "video2world.safetensors"
STATS_FILE = "latent_stats.safetensors"
MANIFEST_FILE = "tiny_world.json"
# The patch embedding's Linear: its input is each patch flattened channel-major, (c, t, h, w).
PATCH_EMBED_KEY = "x_embedder.proj.1.weight"


def tiny_world_dir() -> Path:
    """The directory holding the shipped weights (inside the installed package)."""
    # From the package's own file, not importlib.resources: an editable install's resource root
    # multiplexes the build directory and the source tree, and names the build directory first.
    return Path(cosmos_kernels.__file__).parent / "assets" / "tiny_world"


def tiny_world_manifest(directory: str | Path | None = None) -> dict[str, Any]:
    """``tiny_world.json`` of the shipped model (or of the one in ``directory``): model names and
    overrides, the trained frame size and sampling settings, the measured figures."""
    path = Path(directory or tiny_world_dir()) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the tiny world model's {MANIFEST_FILE} is missing from {path.parent}; reinstall the "
            "package or rebuild it with scripts/train_tiny_world_model.py"
        )
    return json.loads(path.read_text())


def tiny_world_text_encoder(directory: str | Path | None = None) -> HashTextEncoder:
    """The text encoder the shipped model was trained with: ``HashTextEncoder`` padding to the
    manifest's ``text_tokens`` (not T5's 512: the zero padding tokens take part in cross-attention,
    so sampling must pad as training did, and 24 tokens cost far less than 512 on a CPU)."""
    return HashTextEncoder(max_length=tiny_world_manifest(directory)["text_tokens"])


def text2world_state_dict(video2world: dict[str, Tensor], latent_channels: int) -> dict[str, Tensor]:
    """A Video2World DiT state dict with its condition-mask input channel dropped: the Text2World
    network that computes what the Video2World one does with no given frame (mask all zero)."""
    weight = video2world[PATCH_EMBED_KEY]
    out, columns = weight.shape
    # Channels: latents, then the condition mask (index latent_channels), then the padding mask.
    per_channel = columns // (latent_channels + 2)
    if per_channel * (latent_channels + 2) != columns:
        raise ValueError(
            f"text2world_state_dict: {PATCH_EMBED_KEY} has {columns} input columns, not a multiple of "
            f"latent_channels + 2 = {latent_channels + 2}"
        )
    keep = [c for c in range(latent_channels + 2) if c != latent_channels]
    sliced = weight.reshape(out, latent_channels + 2, per_channel)[:, keep].reshape(out, -1)
    return {**video2world, PATCH_EMBED_KEY: sliced.contiguous()}


def load_tiny_world(
    kind: str = "text2world",
    device: str | torch.device = "cpu",
    directory: str | Path | None = None,
) -> tuple[GeneralDIT, ContinuousTokenizer, Tensor, Tensor]:
    """The shipped tiny world model as (net, tokenizer, latent_mean, latent_std), float32, in eval
    mode on ``device``: ``kind`` "text2world" (a ``tiny`` network) or "video2world" (a
    ``tiny-video2world`` one). Pass the four to ``Text2WorldPipeline`` / ``Video2WorldPipeline``
    (``latent_mean=..., latent_std=...``) at the trained size, ``tiny_world_manifest()["size"]``.
    ``directory``: load from there instead (the output of ``scripts/train_tiny_world_model.py``)."""
    if kind not in KINDS:
        raise ValueError(f"load_tiny_world: kind must be one of {KINDS}, got {kind!r}")
    root = Path(directory or tiny_world_dir())
    manifest = tiny_world_manifest(root)
    tokenizer = build_tokenizer(manifest["tokenizer"], **manifest["tokenizer_overrides"])
    # The files hold float16 (half the size); the models run in float32.
    weights = safetensors.torch.load_file(root / TOKENIZER_FILE)
    tokenizer.load_state_dict({key: value.float() for key, value in weights.items()})
    state = safetensors.torch.load_file(root / DIT_FILE)
    state = {key: value.float() for key, value in state.items()}
    overrides = manifest["dit_overrides"]
    if kind == "video2world":
        net = build_dit("tiny-video2world", **overrides)
    else:
        net = build_dit("tiny", **overrides)
        state = text2world_state_dict(state, net.config.latent_channels)
    net.load_state_dict(state)
    stats = safetensors.torch.load_file(root / STATS_FILE)
    return (
        net.to(device).eval(),
        tokenizer.to(device).eval(),
        stats["mean"].to(device),
        stats["std"].to(device),
    )
