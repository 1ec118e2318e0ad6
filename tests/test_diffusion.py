"""EDM preconditioning, training loss, samplers, guidance and Video2World conditioning on toy networks.

The exact denoiser of Gaussian data N(mu, s^2) is D(x; sigma) = mu + s^2 / (s^2 + sigma^2) (x - mu); its
probability-flow ODE maps x at sigma_max to mu + s / sqrt(s^2 + sigma_max^2) (x - mu), which gives every
sampler a closed-form target.
"""

import math

import pytest
import torch
from einops import rearrange
from torch import nn

from cosmos_kernels.diffusion import (
    EDMDenoiser,
    UncertaintyNet,
    edm_scalings,
    edm_training_loss,
    guided_denoiser,
    initial_noise,
    karras_sigmas,
    loss_weight,
    normalize_domain_latents,
    num_condition_latent_frames,
    run_sampler,
    sample,
    sample_training_sigma,
    sample_video2world,
    video2world_condition,
    video2world_training_condition,
)
from cosmos_kernels.diffusion.latents import normalize_latents

SD = 0.5
SAMPLER_NAMES = ["euler", "heun", "multistep"]


class ToyNet(nn.Module):
    """A GeneralDIT-shaped toy: per-position channel mixing, text, timestep and mask terms, tanh."""

    def __init__(self, channels: int = 4, context: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.mix = nn.Linear(channels, channels)
        self.text = nn.Linear(context, channels, bias=False)
        self.time = nn.Parameter(torch.randn(channels))
        self.mask = nn.Parameter(torch.randn(channels))
        self.calls = []

    def forward(
        self,
        x,
        timesteps,
        crossattn_emb,
        *,
        fps=None,
        padding_mask=None,
        crossattn_mask=None,
        condition_video_input_mask=None,
    ):
        self.calls.append({"x": x, "timesteps": timesteps, "mask": condition_video_input_mask})
        h = self.mix(rearrange(x, "b c t h w -> b t h w c"))
        h = (
            h
            + self.text(crossattn_emb.mean(1))[:, None, None, None]
            + timesteps[:, None, None, None, None] * self.time
        )
        if condition_video_input_mask is not None:
            h = h + rearrange(condition_video_input_mask, "b 1 t h w -> b t h w 1") * self.mask
        return rearrange(torch.tanh(h), "b t h w c -> b c t h w")


def gaussian_denoiser(mu, s):
    def denoise(x, sigma):
        return mu + s**2 / (s**2 + sigma**2) * (x - mu)

    return denoise


def toy_inputs(batch=2, channels=4, frames=3, size=2, tokens=5, context=8, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, frames, size, size, generator=gen)
    emb = torch.randn(batch, tokens, context, generator=gen)
    return x, emb


# --- preconditioning -------------------------------------------------------------------------------


def test_scalings_closed_forms():
    sigma = torch.tensor([0.0002, 0.01, 0.5, 1.0, 80.0], dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma)
    assert c_skip.dtype == torch.float64
    torch.testing.assert_close(c_skip + c_out**2 / SD**2, torch.ones_like(sigma))
    torch.testing.assert_close(c_in**2 * (sigma**2 + SD**2), torch.ones_like(sigma))
    torch.testing.assert_close(c_out, sigma * SD * c_in)
    torch.testing.assert_close(c_noise, sigma.log() / 4)
    torch.testing.assert_close(loss_weight(sigma), 1 / c_out**2)
    torch.testing.assert_close(loss_weight(sigma), (sigma**2 + SD**2) / (sigma * SD) ** 2)
    # at sigma = sigma_data: c_skip = 1/2, c_out = sd / sqrt 2, c_in = 1 / (sd sqrt 2)
    at_sd = [float(c) for c in edm_scalings(torch.tensor(SD, dtype=torch.float64))]
    assert at_sd == pytest.approx([0.5, SD / math.sqrt(2), 1 / (SD * math.sqrt(2)), math.log(SD) / 4])
    assert edm_scalings(2.0)[0].dtype == torch.float32


def test_denoiser_of_an_exact_net_is_the_exact_denoiser():
    """A net that inverts the preconditioning from its inputs alone: D must come out exact."""
    mu, s = 0.2, 0.6
    exact = gaussian_denoiser(mu, s)

    def net(x_in, timesteps, crossattn_emb, **conditions):
        sigma = torch.exp(4 * timesteps).view(-1, 1, 1, 1, 1)
        c_skip, c_out, c_in, _ = edm_scalings(sigma)
        x = x_in / c_in
        return (exact(x, sigma) - c_skip * x) / c_out

    denoiser = EDMDenoiser(net)
    x, emb = toy_inputs()
    x = x.double() * 3
    for sigma in (0.003, 0.5, 7.0, 80.0):
        torch.testing.assert_close(denoiser(x, sigma, emb), exact(x, sigma), rtol=1e-9, atol=1e-9)
    per_sample = torch.tensor([0.01, 20.0], dtype=torch.float64)
    torch.testing.assert_close(denoiser(x, per_sample, emb), exact(x, per_sample.view(-1, 1, 1, 1, 1)))


def test_denoiser_broadcasts_sigma_and_casts_to_the_net_dtype():
    net = ToyNet()
    denoiser = EDMDenoiser(net)
    x, emb = toy_inputs()
    sigmas = torch.tensor([0.3, 4.0])
    both = denoiser(x, sigmas, emb)
    for i in range(2):
        one = denoiser(x[i : i + 1], float(sigmas[i]), emb[i : i + 1])
        torch.testing.assert_close(both[i : i + 1], one)
    torch.testing.assert_close(denoiser(x, torch.tensor(0.3), emb), denoiser(x, 0.3, emb))
    assert both.dtype == torch.float32

    net.to(torch.bfloat16)
    net.calls.clear()
    mask = torch.ones(2, 1, 3, 2, 2)
    out = denoiser(x, 2.0, emb, condition_video_input_mask=mask)
    assert out.dtype == torch.float32
    call = net.calls[0]
    assert call["x"].dtype == call["timesteps"].dtype == call["mask"].dtype == torch.bfloat16
    torch.testing.assert_close(
        call["timesteps"].float(), torch.full((2,), math.log(2.0) / 4), atol=1e-2, rtol=0
    )


# --- training loss ---------------------------------------------------------------------------------


def test_uncertainty_net_has_cosmos_keys_and_formula():
    u = UncertaintyNet(generator=torch.Generator().manual_seed(0))
    shapes = {k: tuple(v.shape) for k, v in u.state_dict().items()}
    assert shapes == {"0.freqs": (128,), "0.phases": (128,), "1.weight": (1, 128)}
    cosmos = {f"logvar.{k}": torch.randn(v) for k, v in shapes.items()}
    u.load_state_dict({k.removeprefix("logvar."): v for k, v in cosmos.items()}, strict=True)
    c_noise = torch.tensor([-2.0, 0.0, 1.1])
    features = math.sqrt(2) * torch.cos(
        c_noise[:, None] * cosmos["logvar.0.freqs"] + cosmos["logvar.0.phases"]
    )
    torch.testing.assert_close(u(c_noise), features @ cosmos["logvar.1.weight"][0])


def test_training_loss_against_a_hand_computation():
    net = ToyNet()
    denoiser = EDMDenoiser(net)
    uncertainty = UncertaintyNet(generator=torch.Generator().manual_seed(3))
    x0, emb = toy_inputs()
    sigma = torch.tensor([0.2, 3.0])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))

    loss, parts = edm_training_loss(denoiser, x0, emb, uncertainty=uncertainty, sigma=sigma, noise=noise)

    s = sigma.view(-1, 1, 1, 1, 1)
    c_skip, c_out, c_in = SD**2 / (s**2 + SD**2), s * SD / (s**2 + SD**2) ** 0.5, 1 / (s**2 + SD**2) ** 0.5
    xt = x0 + s * noise
    d = c_skip * xt + c_out * net(c_in * xt, torch.log(sigma) / 4, emb)
    weighted = (s**2 + SD**2) / (s * SD) ** 2 * (d - x0) ** 2
    u = uncertainty(torch.log(sigma) / 4).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(loss, (weighted / u.exp() + u).mean())
    torch.testing.assert_close(parts.edm_loss, weighted.mean())
    torch.testing.assert_close(parts.mse, ((d - x0) ** 2).mean())
    torch.testing.assert_close(parts.sigma, sigma)
    loss.backward()
    assert uncertainty[1].weight.grad is not None and net.mix.weight.grad is not None

    plain, plain_parts = edm_training_loss(denoiser, x0, emb, sigma=sigma, noise=noise)
    torch.testing.assert_close(plain, weighted.mean())
    assert not plain_parts.logvar.any()


def test_training_sigma_is_lognormal_with_the_video_multiplier():
    sigma = sample_training_sigma(20000, generator=0)
    assert abs(sigma.log().mean().item()) < 0.05 and abs(sigma.log().std().item() - 1) < 0.05  # 5 s.e. < 0.04
    video = sample_training_sigma(8, num_frames=16, adjust_video_noise=True, generator=1)
    torch.testing.assert_close(video, sample_training_sigma(8, generator=1) * 4)
    image = sample_training_sigma(8, num_frames=1, adjust_video_noise=True, generator=1)
    torch.testing.assert_close(image, sample_training_sigma(8, generator=1))
    shifted = sample_training_sigma(8, p_mean=-1.0, p_std=2.0, generator=1)
    torch.testing.assert_close(shifted.log(), sample_training_sigma(8, generator=1).log() * 2 - 1)


def test_joint_image_and_video_batches():
    denoiser = EDMDenoiser(ToyNet())
    _, emb = toy_inputs()
    image = torch.randn(2, 4, 2, 2)
    stats = {"image": (torch.full((4,), 0.5), torch.full((4,), 2.0)), "video": None}
    z = normalize_domain_latents(image, "image", stats)
    assert z.shape == (2, 4, 1, 2, 2)
    torch.testing.assert_close(z[:, :, 0], normalize_latents(image, *stats["image"]))
    video = torch.randn(2, 4, 3, 2, 2)
    torch.testing.assert_close(normalize_domain_latents(video, "video", stats), video * SD)
    with pytest.raises(ValueError, match="domain 'audio'"):
        normalize_domain_latents(video, "audio", stats)
    # the video noise multiplier sqrt(T) leaves 1-frame (image) batches alone
    _, image_parts = edm_training_loss(denoiser, z, emb, adjust_video_noise=True, generator=5)
    _, video_parts = edm_training_loss(
        denoiser, torch.randn(2, 4, 9, 2, 2), emb, adjust_video_noise=True, generator=5
    )
    torch.testing.assert_close(video_parts.sigma, image_parts.sigma * 3)


def test_video2world_training_condition_and_loss():
    net = ToyNet()
    denoiser = EDMDenoiser(net)
    x0, emb = toy_inputs(frames=4)
    condition = video2world_training_condition(
        x0, max_condition_frames=2, min_condition_frames=1, condition_dropout=0, generator=7
    )
    n = condition.num_condition_frames
    assert 1 <= n <= 2
    counts = {video2world_training_condition(x0, generator=g).num_condition_frames for g in range(40)}
    assert counts == {0, 1, 2}
    sigma = torch.tensor([0.2, 3.0])
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))

    net.calls.clear()
    loss, parts = edm_training_loss(denoiser, x0, emb, sigma=sigma, noise=noise, video_condition=condition)

    call = net.calls[0]
    mask = call["mask"]
    assert mask.shape == (2, 1, 4, 2, 2) and mask[:, :, :n].eq(1).all() and mask[:, :, n:].eq(0).all()
    aug = condition.augment_sigma.view(-1, 1, 1, 1, 1)
    expected_in = (x0 + aug * condition.noise) / (aug**2 + SD**2).sqrt()
    torch.testing.assert_close(call["x"][:, :, :n], expected_in[:, :, :n])
    s = sigma.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(call["x"][:, :, n:], ((x0 + s * noise) / (s**2 + SD**2).sqrt())[:, :, n:])
    # the condition frames add no error; the mean still counts their elements, as Cosmos's does
    _, plain = edm_training_loss(denoiser, x0, emb, sigma=sigma, noise=noise)
    assert parts.edm_loss < plain.edm_loss
    with pytest.raises(ValueError, match="max_condition_frames"):
        video2world_training_condition(x0, max_condition_frames=4)
    assert torch.isfinite(loss)

    # a dropped condition (unconditional batch): zeros and a zero mask in, still no loss on the frames
    dropped = video2world_training_condition(x0, min_condition_frames=2, condition_dropout=1, generator=7)
    assert dropped.dropped
    net.calls.clear()
    _, dropped_parts = edm_training_loss(denoiser, x0, emb, sigma=sigma, noise=noise, video_condition=dropped)
    call = net.calls[0]
    assert not call["mask"].any() and not call["x"][:, :, :2].any()
    assert dropped_parts.edm_loss < plain.edm_loss
    rate = sum(video2world_training_condition(x0, generator=g).dropped for g in range(400)) / 400
    assert abs(rate - 0.2) < 0.1  # 5 standard errors of a 400-draw frequency


# --- samplers ---------------------------------------------------------------------------------------


def test_karras_sigmas_closed_form():
    n = 35
    sigmas = karras_sigmas(n)
    assert sigmas.shape == (n + 1,) and sigmas.dtype == torch.float32
    i = torch.arange(n, dtype=torch.float64)
    closed = (80 ** (1 / 7) + i / (n - 1) * (0.0002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    torch.testing.assert_close(sigmas[:-1], closed.float(), rtol=0, atol=0)
    assert sigmas[0].item() == 80.0 and sigmas[-1].item() == 0.0
    assert sigmas[-2].item() == pytest.approx(0.0002, rel=1e-6)
    assert (sigmas[1:] < sigmas[:-1]).all()
    assert karras_sigmas(1).tolist() == [80.0, 0.0]
    custom = karras_sigmas(4, sigma_min=0.1, sigma_max=10.0, rho=3.0)
    assert custom[0].item() == pytest.approx(10.0) and custom[-2].item() == pytest.approx(0.1)


def test_euler_matches_the_diffusers_recurrence_step_by_step():
    """diffusers' EDMEulerScheduler as Cosmos drives it: scale_model_input, net, precondition_outputs,
    step, with the Karras sigmas in float32."""
    net = ToyNet()
    denoiser = EDMDenoiser(net)
    _, emb = toy_inputs()
    shape, steps, seed = (2, 4, 3, 2, 2), 12, 11
    ours = sample(lambda x, s: denoiser(x, s, emb), shape, num_steps=steps, generator=seed)

    sigmas = karras_sigmas(steps)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * (80.0**2 + 1) ** 0.5
    with torch.no_grad():
        for i in range(steps):
            sigma = sigmas[i]
            scaled = x / (sigma**2 + SD**2) ** 0.5
            out = net(scaled, (0.25 * torch.log(sigma)).expand(2), emb)
            x0 = SD**2 / (sigma**2 + SD**2) * x + sigma * SD / (sigma**2 + SD**2) ** 0.5 * out
            x = x + (x - x0) / sigma * (sigmas[i + 1] - sigma)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_samplers_reach_the_gaussian_target(sampler):
    """N(mu, s^2) data, s = 1: the start N(0, 80^2 + 1) is the exact marginal at sigma_max up to its mean,
    so the exact ODE ends at mean mu (1 - k), std k sqrt(80^2 + 1) = 1 with k = s / sqrt(s^2 + 80^2).

    Tolerances: the statistical error of 50,000 samples is 0.5 % (1 s.e. of the std) and the
    discretization error of 35 steps on this ODE is ~7 % for first-order Euler and ~1 % for the
    second-order samplers (see the convergence test below)."""
    mu, s = 0.5, 1.0
    out = sample(gaussian_denoiser(mu, s), (50_000,), sampler=sampler, generator=0, dtype=torch.float64)
    k = s / math.sqrt(s**2 + 80**2)
    discretization = 0.08 if sampler == "euler" else 0.015
    assert out.std().item() == pytest.approx(k * math.sqrt(80**2 + 1), rel=discretization + 0.025)
    assert out.mean().item() == pytest.approx(mu * (1 - k), abs=0.025)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_samplers_converge_at_their_order(sampler):
    """Doubling the steps halves Euler's error (first order) and quarters Heun's and DPM++(2M)'s."""
    mu, s = 0.3, 0.7
    x = torch.tensor([mu + 1.0], dtype=torch.float64)
    exact = mu + s / math.sqrt(s**2 + 80**2)

    def error(steps):
        return abs(
            run_sampler(gaussian_denoiser(mu, s), x, karras_sigmas(steps), sampler=sampler).item() - exact
        )

    ratio = error(40) / error(80)
    assert (1.7 < ratio < 2.3) if sampler == "euler" else (3.5 < ratio < 5.0)


@pytest.mark.parametrize("sampler", SAMPLER_NAMES)
def test_samplers_are_deterministic_under_a_seed(sampler):
    denoiser = EDMDenoiser(ToyNet())
    _, emb = toy_inputs()

    def run(generator):
        return sample(
            lambda x, s: denoiser(x, s, emb),
            (2, 4, 3, 2, 2),
            sampler=sampler,
            num_steps=6,
            generator=generator,
        )

    a = run(5)
    assert torch.equal(a, run(5))
    assert torch.equal(a, run(torch.Generator().manual_seed(5)))
    assert not torch.equal(a, run(6))


def test_heun_and_multistep_call_counts(capsys):
    calls = []

    def denoise(x, sigma):
        calls.append(sigma)
        return torch.zeros_like(x)

    sample(denoise, (3,), sampler="heun", num_steps=5, generator=0, progress=True)
    assert len(calls) == 9 and calls[-1] == pytest.approx(0.0002)  # no correction on the step to 0
    assert "heun sampling" in capsys.readouterr().err
    calls.clear()
    sample(denoise, (3,), sampler="multistep", num_steps=5, generator=0)
    assert len(calls) == 5


# --- guidance ---------------------------------------------------------------------------------------


def test_classifier_free_guidance():
    denoiser = EDMDenoiser(ToyNet())
    x, emb = toy_inputs()
    negative = torch.randn(emb.shape, generator=torch.Generator().manual_seed(9))
    cond = denoiser(x, 1.5, emb)
    uncond = denoiser(x, 1.5, torch.zeros_like(emb))

    torch.testing.assert_close(guided_denoiser(denoiser, emb, guidance=0)(x, 1.5), cond)
    torch.testing.assert_close(guided_denoiser(denoiser, emb)(x, 1.5), cond + 7 * (cond - uncond))
    unbatched = guided_denoiser(denoiser, emb, guidance=2.5, negative_crossattn_emb=negative, batched=False)
    batched = guided_denoiser(denoiser, emb, guidance=2.5, negative_crossattn_emb=negative)
    with_negative = cond + 2.5 * (cond - denoiser(x, 1.5, negative))
    torch.testing.assert_close(unbatched(x, 1.5), with_negative)
    torch.testing.assert_close(batched(x, 1.5), with_negative)
    # one network call carries both branches when batched
    denoiser.net.calls.clear()
    batched(x, 1.5)
    assert len(denoiser.net.calls) == 1 and denoiser.net.calls[0]["x"].shape[0] == 4
    # a condition without a batch dimension cannot be stacked: two calls, same result
    unbatchable = {"fps": torch.tensor(24.0)}
    denoiser.net.calls.clear()
    guided = guided_denoiser(denoiser, emb, guidance=2.5, negative_crossattn_emb=negative, **unbatchable)
    torch.testing.assert_close(guided(x, 1.5), with_negative)
    assert len(denoiser.net.calls) == 2


# --- Video2World ------------------------------------------------------------------------------------


def test_video2world_sampling_keeps_the_condition_frames():
    net = ToyNet()
    denoiser = EDMDenoiser(net)
    _, emb = toy_inputs()
    given = torch.randn(2, 4, 2, 2, 2, generator=torch.Generator().manual_seed(2))
    condition = video2world_condition(given, num_frames=5, generator=3)
    assert condition.latent.shape == (2, 4, 5, 2, 2) and not condition.latent[:, :, 2:].any()

    out = sample_video2world(denoiser, condition, emb, num_steps=35, generator=4)

    assert out.shape == (2, 4, 5, 2, 2)
    # Held exactly down to sigma = 0.0013; the last steps (sigma <= augment_sigma) move them by
    # ~augment_sigma x |noise| plus c_out(sigma) |net| <= 6e-4.
    assert (out[:, :, :2] - given).abs().max() < 5e-3
    assert out[:, :, 2:].abs().mean() > 0.1  # the generated frames are not the zero padding
    # the mask channel marks the condition frames in both branches of every call
    for call in net.calls:
        assert call["mask"][:, :, :2].eq(1).all() and call["mask"][:, :, 2:].eq(0).all()


def test_video2world_matches_cosmos_loop():
    """model_v2w.py's loop, with the output replacement written as (gt - c_skip x) / c_out."""
    net = ToyNet()
    denoiser = EDMDenoiser(net)
    _, emb = toy_inputs()
    given = torch.randn(2, 4, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    condition = video2world_condition(given, num_frames=3, generator=3)
    steps, guidance, aug = 8, 7.0, 0.001
    ours = sample_video2world(denoiser, condition, emb, num_steps=steps, guidance=guidance, generator=4)

    gt, noise, mask = condition.latent, condition.noise, condition.input_mask()
    frames = torch.zeros(1, 1, 3, 1, 1)
    frames[:, :, :1] = 1
    sigmas = karras_sigmas(steps)
    x = torch.randn(gt.shape, generator=torch.Generator().manual_seed(4)) * (80.0**2 + 1) ** 0.5
    with torch.no_grad():
        for i in range(steps):
            sigma = sigmas[i]
            indicator = frames if aug < sigma else torch.zeros_like(frames)
            c_skip, c_out = SD**2 / (sigma**2 + SD**2), sigma * SD / (sigma**2 + SD**2) ** 0.5
            c_in, c_in_aug = 1 / (sigma**2 + SD**2) ** 0.5, 1 / (aug**2 + SD**2) ** 0.5
            x = indicator * (gt + aug * noise) * c_in_aug / c_in + (1 - indicator) * x
            t = (0.25 * torch.log(sigma)).expand(2)
            cond = net(x * c_in, t, emb, condition_video_input_mask=mask)
            uncond = net(x * c_in, t, torch.zeros_like(emb), condition_video_input_mask=mask)
            out = cond + guidance * (cond - uncond)
            out = indicator * (gt - c_skip * x) / c_out + (1 - indicator) * out
            x0 = c_skip * x + c_out * out
            x = x + (x - x0) / sigma * (sigmas[i + 1] - sigma)
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


def test_condition_frame_counts():
    assert num_condition_latent_frames(1) == 1
    assert num_condition_latent_frames(9) == 2
    with pytest.raises(ValueError, match="num_input_frames"):
        num_condition_latent_frames(5)


def test_with_the_tiny_cosmos_dit():
    """The real network shape: Cosmos's VideoExtendGeneralDIT (tiny config) trains and samples."""
    from cosmos_kernels.models.dit import build_dit

    torch.manual_seed(0)
    denoiser = EDMDenoiser(build_dit("tiny-video2world"))
    x0 = torch.randn(1, 16, 3, 8, 8)
    emb = torch.randn(1, 7, 1024)
    condition = video2world_training_condition(x0, condition_dropout=0, generator=1)
    loss, _ = edm_training_loss(
        denoiser, x0, emb, uncertainty=UncertaintyNet(), video_condition=condition, generator=0, fps=24.0
    )
    loss.backward()
    assert torch.isfinite(loss) and denoiser.net.x_embedder.proj[1].weight.grad is not None
    given = video2world_condition(x0[:, :, :1], num_frames=3, generator=1)
    out = sample_video2world(denoiser, given, emb, num_steps=3, generator=0, fps=24.0)
    assert out.shape == x0.shape and torch.isfinite(out).all()


# --- bad input --------------------------------------------------------------------------------------


def test_bad_inputs():
    denoiser = EDMDenoiser(ToyNet())
    x, emb = toy_inputs()
    with pytest.raises(ValueError, match="sigma"):
        edm_scalings(0.0)
    with pytest.raises(ValueError, match="sigma"):
        loss_weight(torch.tensor([1.0, -1.0]))
    with pytest.raises(ValueError, match="sigma"):
        denoiser(x, torch.tensor([1.0, 2.0, 3.0]), emb)
    with pytest.raises(ValueError, match="sigma"):
        denoiser(x, float("nan"), emb)
    with pytest.raises(TypeError, match="sigma"):
        denoiser(x, "1.0", emb)
    with pytest.raises(ValueError, match="crossattn_emb"):
        denoiser(x, 1.0, emb[:1])
    with pytest.raises(ValueError, match="net returned"):
        EDMDenoiser(lambda x, t, e, **c: x[:, :1])(x, 1.0, emb)
    with pytest.raises(TypeError, match="net"):
        EDMDenoiser("not a net")
    with pytest.raises(ValueError, match="sigma_data"):
        EDMDenoiser(ToyNet(), sigma_data=0)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="num_steps"):
            karras_sigmas(steps)
    with pytest.raises(ValueError, match="sigma_min"):
        karras_sigmas(10, sigma_min=100.0)
    with pytest.raises(ValueError, match="rho"):
        karras_sigmas(10, rho=0)
    with pytest.raises(ValueError, match="sampler"):
        sample(gaussian_denoiser(0, 1), (3,), sampler="dpm")
    with pytest.raises(ValueError, match="shape"):
        sample(gaussian_denoiser(0, 1), (3, 0))
    with pytest.raises(TypeError, match="generator"):
        initial_noise((3,), generator="seed")
    with pytest.raises(ValueError, match="denoise returned"):
        sample(lambda x, s: x[:1], (3,), num_steps=2)
    with pytest.raises(ValueError, match="decrease"):
        run_sampler(gaussian_denoiser(0, 1), torch.zeros(3), [1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="guidance"):
        guided_denoiser(denoiser, emb, guidance=float("inf"))
    given = torch.randn(2, 4, 2, 2, 2)
    with pytest.raises(ValueError, match="fewer than the frames"):
        video2world_condition(given, num_frames=2)
    with pytest.raises(ValueError, match="num_condition_frames"):
        video2world_condition(given, num_frames=5, num_condition_frames=3)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        video2world_condition(given[0], num_frames=5)
    with pytest.raises(ValueError, match="augment_sigma"):
        video2world_condition(given, num_frames=5, augment_sigma=-1.0)
    with pytest.raises(ValueError, match="x0"):
        edm_training_loss(denoiser, x[:, :, 0], emb)
    with pytest.raises(ValueError, match="sigma"):
        edm_training_loss(denoiser, x, emb, sigma=torch.ones(3))
    with pytest.raises(ValueError, match="noise"):
        edm_training_loss(denoiser, x, emb, noise=torch.ones(1))
    with pytest.raises(ValueError, match="batch_size"):
        sample_training_sigma(0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_under_a_seed():
    """A seed draws the same noise on every device; sampling, guidance, Video2World and the loss run on
    CUDA with a bfloat16 net and stay near the float32 CPU run (bf16 net rounding ~1e-2)."""
    assert torch.equal(initial_noise((3, 4), 7, device="cuda").cpu(), initial_noise((3, 4), 7))
    net = ToyNet()
    _, emb = toy_inputs()
    given = torch.randn(2, 4, 1, 2, 2, generator=torch.Generator().manual_seed(2))
    runs = {}
    for device, dtype in (("cpu", torch.float32), ("cuda", torch.bfloat16)):
        denoiser = EDMDenoiser(net.to(device, dtype))
        condition = video2world_condition(given.to(device), num_frames=3, generator=3)
        runs[device] = sample_video2world(denoiser, condition, emb.to(device), num_steps=10, generator=4)
        loss, _ = edm_training_loss(denoiser, given.to(device), emb.to(device), generator=5)
        assert torch.isfinite(loss)
    assert runs["cuda"].device.type == "cuda" and runs["cuda"].dtype == torch.float32
    torch.testing.assert_close(runs["cuda"].cpu(), runs["cpu"], rtol=0.05, atol=0.05)
