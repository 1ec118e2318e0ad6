"""Deterministic EDM samplers on Karras's noise schedule: Euler (Cosmos's), Heun and a 2nd-order multistep.

Every sampler takes ``denoise(x, sigma) -> x0``, the x0 estimate of a (guided) denoiser, and walks the
probability-flow ODE dx/dsigma = (x - x0) / sigma from sigma_max down to 0 over
``karras_sigmas(num_steps)``. Cosmos-1.0 samples with diffusers' EDMEulerScheduler: first-order Euler,
35 steps, initial noise of standard deviation sqrt(sigma_max^2 + 1); ``sample(..., sampler="euler")``
reproduces its recurrence step by step. The state is kept in ``dtype`` (float32 by default) between steps.
"""

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from cosmos_kernels.checks import check_int, check_number, is_int

Tensor = torch.Tensor
Denoise = Callable[[Tensor, float], Tensor]
Impose = Callable[[Tensor, float], Tensor]
SAMPLERS = ("euler", "heun", "multistep")
# Cosmos-1.0's sampling schedule (cosmos_predict1 inference CLI and EDMEulerScheduler).
NUM_STEPS = 35
SIGMA_MIN = 0.0002
SIGMA_MAX = 80.0
RHO = 7.0


def _check_schedule(num_steps: int, sigma_min: float, sigma_max: float, rho: float) -> None:
    check_int("karras_sigmas", "num_steps", num_steps, 1)
    for name, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max), ("rho", rho)):
        check_number("karras_sigmas", name, value, positive=True)
    if not sigma_min < sigma_max:
        raise ValueError(f"sigma_min ({sigma_min}) must be below sigma_max ({sigma_max})")


def karras_sigmas(
    num_steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> Tensor:
    """The (num_steps + 1,) float32 schedule sigma_max -> sigma_min, then exactly 0.

    sigma_i = (sigma_max^(1/rho) + i / (num_steps - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    computed in float64 and rounded to float32, as diffusers' EDMEulerScheduler.set_timesteps does
    (``final_sigmas_type="zero"``). With one step the schedule is [sigma_max, 0].
    """
    _check_schedule(num_steps, sigma_min, sigma_max, rho)
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    max_inv_rho, min_inv_rho = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)) ** rho
    return torch.cat([sigmas.float(), sigmas.new_zeros(1, dtype=torch.float32)])


def as_generator(generator: torch.Generator | int | None) -> torch.Generator | None:
    """An int seed as a CPU Generator seeded with it; a Generator or None unchanged."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if not is_int(generator):
        raise TypeError(f"generator must be None, an int seed or a torch.Generator, got {generator!r}")
    return torch.Generator().manual_seed(generator)


def initial_noise(
    shape: Sequence[int],
    generator: torch.Generator | int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard normal noise of ``shape``. An int seed draws on the CPU in float32, so that one seed gives
    the same noise on every device; a Generator draws on its own device; the result is moved to ``device``."""
    if isinstance(shape, torch.Size | tuple | list):
        shape = tuple(shape)
    if not isinstance(shape, tuple) or not shape or not all(isinstance(n, int) and n > 0 for n in shape):
        raise ValueError(f"shape must be a non-empty sequence of positive ints, got {shape!r}")
    generator = as_generator(generator)
    if generator is None:
        return torch.randn(shape, dtype=dtype, device=device)
    noise = torch.randn(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return noise.to(device=device, dtype=dtype)


def _x0(denoise: Denoise, x: Tensor, sigma: float) -> Tensor:
    x0 = denoise(x, sigma)
    if not isinstance(x0, Tensor) or x0.shape != x.shape:
        shape = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
        raise ValueError(f"denoise returned {shape}, expected a tensor shaped like x {tuple(x.shape)}")
    return x0.to(x.dtype)


def _euler(denoise: Denoise, x: Tensor, sigmas: list[float], impose: Impose | None, bar: tqdm) -> Tensor:
    for sigma, sigma_next in itertools.pairwise(sigmas):
        if impose is not None:
            x = impose(x, sigma)
        x0 = _x0(denoise, x, sigma)
        x = x + (x - x0) / sigma * (sigma_next - sigma)
        bar.update()
    return x


def _heun(denoise: Denoise, x: Tensor, sigmas: list[float], impose: Impose | None, bar: tqdm) -> Tensor:
    for sigma, sigma_next in itertools.pairwise(sigmas):
        if impose is not None:
            x = impose(x, sigma)
        slope = (x - _x0(denoise, x, sigma)) / sigma
        x_next = x + (sigma_next - sigma) * slope
        # Karras et al. 2022, Alg. 1: the trapezoidal correction needs the slope at sigma_next, which
        # does not exist at sigma = 0, so the last step stays first order.
        if sigma_next > 0:
            if impose is not None:
                x_next = impose(x_next, sigma_next)
            slope_next = (x_next - _x0(denoise, x_next, sigma_next)) / sigma_next
            x_next = x + (sigma_next - sigma) * (slope + slope_next) / 2
        x = x_next
        bar.update()
    return x


def _multistep(denoise: Denoise, x: Tensor, sigmas: list[float], impose: Impose | None, bar: tqdm) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022) in data prediction with t = -ln(sigma), as k-diffusion writes it.

    Its first-order step x <- (s'/s) x + (1 - s'/s) x0 is exactly the Euler step; later steps replace x0
    by a linear extrapolation from the previous step's x0, one network evaluation per step.
    """
    previous: tuple[Tensor, float] | None = None
    for sigma, sigma_next in itertools.pairwise(sigmas):
        if impose is not None:
            x = impose(x, sigma)
        x0 = _x0(denoise, x, sigma)
        if sigma_next == 0:
            x = x0
        else:
            h = math.log(sigma / sigma_next)
            target = x0
            if previous is not None:
                x0_prev, sigma_prev = previous
                r = math.log(sigma_prev / sigma) / h
                target = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
            x = (sigma_next / sigma) * x - math.expm1(-h) * target
        previous = (x0, sigma)
        bar.update()
    return x


_SOLVERS = {"euler": _euler, "heun": _heun, "multistep": _multistep}


@torch.no_grad()
def run_sampler(
    denoise: Denoise,
    x: Tensor,
    sigmas: Tensor | Sequence[float],
    *,
    sampler: str = "euler",
    impose: Impose | None = None,
    progress: bool = False,
) -> Tensor:
    """Integrates from ``x`` at ``sigmas[0]`` down the decreasing schedule ``sigmas`` and returns the state
    at ``sigmas[-1]``, shaped and typed like ``x``.

    ``impose(x, sigma) -> x``, when given, rewrites the state before every network evaluation (Video2World
    puts its condition frames back this way). ``progress`` shows a tqdm bar with one tick per step.
    Runs without autograd: a graph through every step of a large network would not fit in memory.
    """
    if sampler not in _SOLVERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError("x must be a floating-point tensor")
    schedule = [float(s) for s in (sigmas.tolist() if isinstance(sigmas, Tensor) else sigmas)]
    if len(schedule) < 2:
        raise ValueError(f"sigmas must hold at least 2 values, got {len(schedule)}")
    if not all(math.isfinite(s) and s >= 0 for s in schedule) or schedule[0] <= 0:
        raise ValueError("sigmas must be finite, non-negative and start positive")
    if any(b >= a for a, b in itertools.pairwise(schedule)):
        raise ValueError("sigmas must decrease strictly")
    if schedule[-2] == 0:
        raise ValueError("only the last sigma may be 0")
    with tqdm(total=len(schedule) - 1, desc=f"{sampler} sampling", disable=not progress) as bar:
        return _SOLVERS[sampler](denoise, x, schedule, impose, bar)


def sample(
    denoise: Denoise,
    shape: Sequence[int],
    *,
    sampler: str = "euler",
    num_steps: int = NUM_STEPS,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    generator: torch.Generator | int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    impose: Impose | None = None,
    progress: bool = False,
) -> Tensor:
    """A sample of ``shape`` (e.g. (B, 16, T, H, W) latents) in ``dtype`` on ``device``.

    Starts from ``initial_noise(shape, generator) * sqrt(sigma_max^2 + 1)`` (diffusers' init_noise_sigma)
    and runs ``run_sampler`` over ``karras_sigmas(num_steps, sigma_min, sigma_max, rho)``; ``sampler`` is
    "euler" (Cosmos's; num_steps network evaluations), "heun" (2 num_steps - 1) or "multistep" (num_steps).
    The same ``generator`` seed gives the same result.
    """
    if sampler not in _SOLVERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    sigmas = karras_sigmas(num_steps, sigma_min, sigma_max, rho)
    x = initial_noise(shape, generator, dtype=dtype, device=device) * math.sqrt(sigma_max**2 + 1)
    return run_sampler(denoise, x, sigmas, sampler=sampler, impose=impose, progress=progress)
