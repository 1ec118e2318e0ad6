"""Load Cosmos tokenizer weights (the state dicts of its encoder.jit / decoder.jit / autoencoder.jit).

Cosmos ships TorchScript files; ``torch.jit.load(path).state_dict()`` gives keys prefixed ``encoder.``
and ``quant_conv.`` (encoder.jit), ``post_quant_conv.`` and ``decoder.`` (decoder.jit), or all four
(autoencoder.jit), which are exactly our parameter names. Two differences between Cosmos's code
versions are tolerated: the convs of an inactive down/upsampler exist in Cosmos Tokenizer's models
and are absent from cosmos-predict1's, and cosmos-predict1 saves the Haar patchers' constant buffers
(``wavelets``, ``_arange``, ``patch_size_buffer``), which our patchers do not need. Everything else
must match: a missing or unknown key, or a shape mismatch, is an error that names the key.

Discrete tokenizers (DV, DI): encoder.jit is ``Sequential(encoder, quant_conv, quantizer)`` and
decoder.jit ``Sequential(inv_quant=InvQuantizerJit(quantizer), post_quant_conv, decoder)``
(docs/COSMOS.md Part 2, 2.5), so their state dicts also hold the FSQ constants ``quantizer.*`` /
``inv_quant.quantizer.*`` (``_levels``, ``_basis``, ``implicit_codebook``). The quantizer has no
weights: those buffers are skipped after checking that they describe this model's FSQ.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from cosmos_kernels.models._checks import check_state_dict
from cosmos_kernels.models.tokenizer import DiscreteTokenizer, TokenizerBase
from cosmos_kernels.nn import CausalHybridDownsample3d, CausalHybridUpsample3d, FSQuantizer

Tensor = torch.Tensor
HALVES = {"encoder": ("encoder.", "quant_conv."), "decoder": ("decoder.", "post_quant_conv.")}
PATCHERS = ("encoder.patcher3d.", "decoder.unpatcher3d.", "encoder.patcher.", "decoder.unpatcher.")
HAAR_BUFFERS = ("wavelets", "_arange", "patch_size_buffer")
QUANTIZERS = ("quantizer.", "inv_quant.quantizer.")
FSQ_BUFFERS = ("_levels", "_basis", "implicit_codebook")


@dataclass(frozen=True)
class LoadedTokenizerState:
    """What :func:`load_cosmos_tokenizer_state_dict` loaded: which halves, and which keys it skipped."""

    encoder: bool
    decoder: bool
    skipped_keys: tuple[str, ...]


def inert_parameter_names(model: TokenizerBase) -> set[str]:
    """Parameters of the down/upsampler convs that never run (see ``CausalHybridDownsample3d``)."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, CausalHybridDownsample3d | CausalHybridUpsample3d):
            for conv in module.inert_convs():
                names.update(f"{prefix}.{conv}.{p}" for p, _ in module.get_submodule(conv).named_parameters())
    return names


def _check_haar_buffer(key: str, value: Tensor, patch_size: int) -> None:
    # A skipped buffer still says which transform the checkpoint was trained with.
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "wavelets":
        expected = torch.full((2,), math.sqrt(0.5), dtype=torch.float64)
    elif leaf == "patch_size_buffer":
        expected = torch.tensor([patch_size], dtype=torch.float64)
    else:
        return
    if value.shape != expected.shape or not torch.allclose(value.detach().cpu().double(), expected):
        raise ValueError(
            f"{key} = {value.tolist()} does not match this model's Haar patcher (expected "
            f"{expected.tolist()}): the checkpoint uses another patch method or patch size"
        )


def _check_fsq_buffer(key: str, value: Tensor, quantizer: FSQuantizer) -> None:
    # The constants say which levels the checkpoint's tokens were made with.
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "implicit_codebook":
        expected = quantizer.codebook().cpu().double()
    else:
        expected = torch.tensor(quantizer.levels if leaf == "_levels" else quantizer.basis).double()
    if value.shape != expected.shape or not torch.equal(value.detach().cpu().double(), expected):
        shown = value.tolist() if value.numel() <= 8 else f"a {tuple(value.shape)} tensor"
        raise ValueError(
            f"{key} = {shown} does not match this model's FSQ levels {list(quantizer.levels)}: the "
            "checkpoint quantizes with other levels (set `levels` to the checkpoint's)"
        )


def load_cosmos_tokenizer_state_dict(
    model: TokenizerBase, state_dict: Mapping[str, Tensor]
) -> LoadedTokenizerState:
    """Copy a Cosmos tokenizer state dict into ``model``, whole or one half.

    The encoder half is ``encoder.*`` + ``quant_conv.*``, the decoder half ``post_quant_conv.*`` +
    ``decoder.*``; a half with any key present must be complete (inactive down/upsampler convs
    excepted), and a half with none is left as it is. Raises ValueError naming the first offending
    key: unknown, missing, or of the wrong shape (both shapes given), or a Haar or FSQ constant
    that differs from the model's.
    """
    ours = model.state_dict()
    given: dict[str, Tensor] = {}
    skipped = []
    for key, value in state_dict.items():
        if not isinstance(value, Tensor):
            raise TypeError(f"state_dict[{key!r}] must be a tensor, got {type(value).__name__}")
        if key.startswith(PATCHERS) and key.rsplit(".", 1)[-1] in HAAR_BUFFERS:
            _check_haar_buffer(key, value, model.config.patch_size)
            skipped.append(key)
        elif (
            isinstance(model, DiscreteTokenizer)
            and key.startswith(QUANTIZERS)
            and key.rsplit(".", 1)[-1] in FSQ_BUFFERS
        ):
            _check_fsq_buffer(key, value, model.quantizer)
            skipped.append(key)
        else:
            given[key] = value

    check_state_dict(ours, given, required=())
    present = {half: any(k.startswith(prefixes) for k in given) for half, prefixes in HALVES.items()}
    if not any(present.values()):
        raise ValueError(
            "the state dict has no tokenizer weights "
            "(keys encoder.*, quant_conv.*, post_quant_conv.*, decoder.*)"
        )
    prefixes = tuple(p for half, ps in HALVES.items() if present[half] for p in ps)
    inert = inert_parameter_names(model)
    check_state_dict(ours, given, required=[k for k in ours if k.startswith(prefixes) and k not in inert])
    model.load_state_dict(given, strict=False)
    return LoadedTokenizerState(present["encoder"], present["decoder"], tuple(skipped))
