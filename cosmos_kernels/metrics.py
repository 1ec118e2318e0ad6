"""Image and video quality metrics: PSNR and SSIM, on tensors of any pixel scale.

Below the layers, like ``checks``: it imports only torch, so that models, pipelines, training and the
command line can all measure reconstructions with the same code.
"""

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def psnr(a: Tensor, b: Tensor, data_range: float = 2.0) -> float:
    """Peak signal-to-noise ratio in dB over all of ``a`` and ``b`` (same shape); ``data_range`` is
    max - min of the pixel scale: 2 for [-1, 1], 1 for [0, 1]. inf when they are equal."""
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(a.shape)} and {tuple(b.shape)}")
    mse = F.mse_loss(a.double(), b.double()).item()
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float) -> Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: Tensor, b: Tensor, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) of ``a`` and ``b``, (..., H, W) images or frames.

    Every (H, W) plane (each channel of each frame) is compared with an 11x11 Gaussian window
    (sigma 1.5, K1 = 0.01, K2 = 0.03), without padding, and the SSIM map is averaged over all
    planes; 1.0 for equal inputs. Planes smaller than the window use a window of their size.
    """
    if a.shape != b.shape or a.dim() < 2:
        raise ValueError(
            f"ssim: expected equal shapes (..., H, W), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    height, width = a.shape[-2:]
    window = min(window, height, width)
    g = _gaussian_window(window, sigma).to(a.device)
    x, y = (t.double().reshape(-1, 1, height, width) for t in (a, b))

    def blur(t: Tensor) -> Tensor:  # separable: the 2D Gaussian is the product of two 1D ones
        return F.conv2d(F.conv2d(t, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return ssim_map.mean().item()
