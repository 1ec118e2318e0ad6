"""Classifier-free guidance in Cosmos's form: out = cond + g (cond - uncond), default g = 7.

Cosmos applies it to the raw network output (cosmos_predict1/diffusion/model/model_t2w.py), so g is the
*extra* guidance (g = 7 is scale 8 in the usual cond-minus-uncond convention). Preconditioning is affine
with the same c_skip x term in both branches, so guiding the x0 estimates gives the same result; this
module guides x0 and can therefore wrap any ``EDMDenoiser``. The unconditional branch sees a zero text
embedding, Cosmos's dropped text condition, or a negative prompt's embedding when one is given.
"""

from collections.abc import Callable, Mapping

import torch

from cosmos_kernels.checks import check_number
from cosmos_kernels.diffusion.samplers import Denoise

Tensor = torch.Tensor
GUIDANCE = 7.0


def _stackable(cond: object, uncond: object, batch: int) -> bool:
    """Whether one call on a 2B batch can carry both branches' values of a condition."""
    if isinstance(cond, Tensor) and isinstance(uncond, Tensor):
        return cond.shape == uncond.shape and cond.dim() > 0 and cond.shape[0] == batch
    return cond is uncond


def guided_denoiser(
    denoiser: Callable[..., Tensor],
    crossattn_emb: Tensor,
    *,
    guidance: float = GUIDANCE,
    negative_crossattn_emb: Tensor | None = None,
    uncond_conditions: Mapping[str, object] | None = None,
    batched: bool = True,
    **conditions: object,
) -> Denoise:
    """``denoise(x, sigma) -> x0`` with classifier-free guidance, for the samplers.

    ``denoiser`` is an ``EDMDenoiser`` (or any callable ``(x, sigma, crossattn_emb, **conditions) -> x0``);
    ``crossattn_emb`` (B, L, D) is the prompt's text embedding and ``negative_crossattn_emb`` (B, L', D)
    replaces the unconditional branch's zero embedding. ``conditions`` (fps, padding_mask,
    condition_video_input_mask, ...) go to both branches, with ``uncond_conditions`` overriding them in the
    unconditional one. With ``batched``, equal embedding shapes and tensor conditions that lead with B in
    both branches, the two branches run as one network call on a 2B batch, else as two calls;
    ``guidance == 0`` runs the conditional branch alone.
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable, got {type(denoiser).__name__}")
    check_number("guided_denoiser", "guidance", guidance)
    if not isinstance(crossattn_emb, Tensor) or crossattn_emb.dim() < 1:
        raise TypeError("crossattn_emb must be a tensor (B, L, D)")
    batch = crossattn_emb.shape[0]
    if negative_crossattn_emb is None:
        negative_crossattn_emb = torch.zeros_like(crossattn_emb)
    elif not isinstance(negative_crossattn_emb, Tensor) or negative_crossattn_emb.shape[:1] != (batch,):
        raise ValueError(f"negative_crossattn_emb must be a tensor with batch {batch} like crossattn_emb")
    uncond = {**conditions, **(uncond_conditions or {})}
    one_call = (
        batched
        and negative_crossattn_emb.shape == crossattn_emb.shape
        and conditions.keys() == uncond.keys()
        and all(_stackable(value, uncond[key], batch) for key, value in conditions.items())
    )

    def denoise(x: Tensor, sigma: Tensor | float) -> Tensor:
        cond = denoiser(x, sigma, crossattn_emb, **conditions)
        if guidance == 0:
            return cond
        return cond + guidance * (cond - denoiser(x, sigma, negative_crossattn_emb, **uncond))

    def denoise_batched(x: Tensor, sigma: Tensor | float) -> Tensor:
        if isinstance(sigma, Tensor) and sigma.numel() > 1:
            sigma = torch.cat([sigma.reshape(-1), sigma.reshape(-1)])
        both = {
            key: torch.cat([value, uncond[key]]) if isinstance(value, Tensor) else value
            for key, value in conditions.items()
        }
        x0 = denoiser(torch.cat([x, x]), sigma, torch.cat([crossattn_emb, negative_crossattn_emb]), **both)
        cond, uncond_x0 = x0.chunk(2)
        return cond + guidance * (cond - uncond_x0)

    return denoise_batched if one_call and guidance != 0 else denoise
