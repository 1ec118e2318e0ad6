"""The tiny diffusion decoder shipped with the package: a tiny DV8x16x16 tokenizer and a "tiny-decoder"
network trained on CPU on the synthetic physics clips by ``scripts/train_tiny_diffusion_decoder.py``;
its CV side is the tiny world model's tokenizer and latent statistics (``models.tiny_world``).

The files live in ``cosmos_kernels/assets/tiny_decoder/``: ``decoder.safetensors`` (the EMA weights of
the decoder network), ``dv_tokenizer.safetensors`` (the discrete tokenizer) and ``tiny_decoder.json``
(the configs' overrides, the text length, the sampling window and the figures measured on held-out
clips).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn

import cosmos_kernels
from cosmos_kernels.models.dit_decoder import DiffusionDecoderGeneralDIT
from cosmos_kernels.models.text_encoders import HashTextEncoder
from cosmos_kernels.models.tiny_world import load_tiny_world
from cosmos_kernels.models.tokenizer import ContinuousTokenizer, build_tokenizer

Tensor = torch.Tensor
DECODER_FILE = "decoder.safetensors"
DV_TOKENIZER_FILE = "dv_tokenizer.safetensors"
MANIFEST_FILE = "tiny_decoder.json"


def tiny_decoder_dir() -> Path:
    """The directory holding the shipped weights (inside the installed package)."""
    return Path(cosmos_kernels.__file__).parent / "assets" / "tiny_decoder"


def tiny_decoder_manifest(directory: str | Path | None = None) -> dict[str, Any]:
    """``tiny_decoder.json`` of the shipped decoder (or of the one in ``directory``)."""
    path = Path(directory or tiny_decoder_dir()) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the tiny diffusion decoder's {MANIFEST_FILE} is missing from {path.parent}; reinstall the "
            "package or rebuild it with scripts/train_tiny_diffusion_decoder.py"
        )
    return json.loads(path.read_text())


@dataclass
class TinyDecoder:
    """The parts of ``DiffusionDecoderPipeline`` (float32, eval mode) and the manifest."""

    net: DiffusionDecoderGeneralDIT
    dv_tokenizer: nn.Module
    cv_tokenizer: ContinuousTokenizer
    text_encoder: HashTextEncoder
    latent_mean: Tensor
    latent_std: Tensor
    manifest: dict[str, Any]


def build_tiny_decoder_parts(manifest: dict[str, Any]) -> tuple[DiffusionDecoderGeneralDIT, nn.Module]:
    """The decoder network and the DV tokenizer the manifest names, freshly initialized."""
    from cosmos_kernels.models.dit import build_dit

    net = build_dit("tiny-decoder", **manifest["decoder_overrides"])
    dv = build_tokenizer(manifest["dv_tokenizer"], **manifest["dv_tokenizer_overrides"])
    return net, dv  # type: ignore[return-value]


def load_tiny_decoder(directory: str | Path | None = None, device: str | torch.device = "cpu") -> TinyDecoder:
    """The shipped tiny diffusion decoder (or the one in ``directory``, the output of
    ``scripts/train_tiny_diffusion_decoder.py``) on ``device``."""
    root = Path(directory or tiny_decoder_dir())
    manifest = tiny_decoder_manifest(root)
    net, dv = build_tiny_decoder_parts(manifest)
    # The files hold float16 (half the size); the models run in float32.
    for module, file in ((net, DECODER_FILE), (dv, DV_TOKENIZER_FILE)):
        module.load_state_dict({k: v.float() for k, v in safetensors.torch.load_file(root / file).items()})
    _, cv, mean, std = load_tiny_world("text2world", device)
    return TinyDecoder(
        net.to(device).eval(),
        dv.to(device).eval(),
        cv,
        HashTextEncoder(max_length=manifest["text_tokens"]),
        mean,
        std,
        manifest,
    )
