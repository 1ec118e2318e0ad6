"""The Cosmos discrete tokenizers (DV, DI): FSQ against a transcription of Cosmos's formulas, shapes,
parameter counts, checkpoint keys, exact streaming, the kernels they run on, bad input, and training
through the straight-through codes."""

import math

import pytest
import torch
from test_tokenizer import attn, conv, conv2d, fconv, hybrid, mid, mid2d, norm, res, res2d

from cosmos_kernels import ops
from cosmos_kernels.metrics import psnr
from cosmos_kernels.models import (
    DiscreteTokenizer,
    DiscreteTokenizerConfig,
    build_tokenizer,
    inert_parameter_names,
    load_cosmos_tokenizer_state_dict,
    tokenizer_config,
)
from cosmos_kernels.nn import FSQuantizer
from cosmos_kernels.training import (
    TokenizerPhase,
    physics_tokenizer_batch,
    pooled_video_target,
    train_tokenizer,
)

LEVELS = [8, 8, 8, 5, 5, 5]

# Cosmos Tokenizer's networks/configs.py `discrete_video` dict, less its `name`.
COSMOS_DISCRETE_VIDEO = dict(
    attn_resolutions=[32],
    channels=128,
    channels_mult=[2, 4, 4],
    dropout=0.0,
    in_channels=3,
    num_res_blocks=2,
    out_channels=3,
    resolution=1024,
    patch_size=4,
    patch_method="haar",
    z_channels=16,
    z_factor=1,
    num_groups=1,
    legacy_mode=False,
    spatial_compression=16,
    temporal_compression=8,
    quantizer="FSQ",
    embedding_dim=6,
    levels=LEVELS,
    encoder="FACTORIZED",
    decoder="FACTORIZED",
)


# --- FSQ: a direct transcription of Cosmos Tokenizer's FSQuantizer (modules/quantizers.py), on
# channels-last tensors as Cosmos has them ------------------------------------------------------------


def cosmos_bound(z, levels, eps=1e-3):
    half_l = (levels - 1) * (1 + eps) / 2
    offset = torch.where(levels % 2 == 0, 0.5, 0.0)
    shift = (offset / half_l).atanh()
    return (z + shift).tanh() * half_l - offset


def cosmos_quantize(z, levels):
    bounded = cosmos_bound(z, levels)
    quantized = bounded + (bounded.round() - bounded).detach()  # round_ste
    return quantized / (levels // 2)


def cosmos_codes_to_indices(zhat, levels, basis):
    zhat = (zhat * (levels // 2) + levels // 2).float()
    return (zhat * basis).sum(dim=-1).to(torch.int32)


def cosmos_indices_to_codes(indices, levels, basis):
    codes_non_centered = (indices[..., None] // basis) % levels
    return (codes_non_centered - levels // 2) / (levels // 2)


def cosmos_constants():
    levels = torch.tensor(LEVELS, dtype=torch.int32)
    basis = torch.cumprod(torch.tensor([1, *LEVELS[:-1]]), dim=0, dtype=torch.int32)
    return levels, basis


def test_fsq_constants():
    q = FSQuantizer(LEVELS)
    _, basis = cosmos_constants()
    assert q.basis == (1, 8, 64, 512, 2560, 12800) == tuple(basis.tolist())
    assert q.codebook_size == 64_000 == math.prod(LEVELS)
    assert q.dim == 6
    # Constants are non-persistent, as in Cosmos: nothing in the state dict.
    assert q.state_dict() == {}


def test_fsq_matches_cosmos_on_random_latents():
    q = FSQuantizer(LEVELS)
    levels, basis = cosmos_constants()
    gen = torch.Generator().manual_seed(0)
    # Wide range: saturated tanh at both ends, and values near the rounding boundaries.
    z = torch.randn(2, 6, 3, 4, 5, generator=gen) * 3
    indices, codes = q(z)
    z_last = z.movedim(1, -1)
    ref_codes = cosmos_quantize(z_last, levels)
    ref_indices = cosmos_codes_to_indices(ref_codes, levels, basis)
    assert indices.dtype == torch.int32 and indices.shape == (2, 3, 4, 5)
    assert torch.equal(codes.movedim(1, -1), ref_codes)
    assert torch.equal(indices, ref_indices)
    assert torch.equal(q.bound(z).movedim(1, -1), cosmos_bound(z_last, levels))
    # Every level is reached: 8 values in the first three channels, 5 in the last three.
    many = q.quantize(torch.linspace(-6, 6, 2001).expand(1, 6, -1).contiguous())
    assert [len(torch.unique(many[0, c])) for c in range(6)] == LEVELS


def test_fsq_round_trip_over_all_64000_indices():
    q = FSQuantizer(LEVELS)
    levels, basis = cosmos_constants()
    indices = torch.arange(64_000, dtype=torch.int32).view(4, 10, 40, 40)
    codes = q.indices_to_codes(indices)
    assert codes.shape == (4, 6, 10, 40, 40)
    assert torch.equal(codes.movedim(1, -1), cosmos_indices_to_codes(indices, levels, basis).float())
    assert torch.equal(q.codes_to_indices(codes), indices)
    # Codes are the grid {-L//2 .. (L-1)//2} / (L//2), all distinct; the codebook lists them in order.
    assert torch.unique(codes.movedim(1, -1).reshape(-1, 6), dim=0).shape == (64_000, 6)
    assert codes.min() == -1 and codes.max() == 1
    assert torch.equal(q.codebook(), codes.movedim(1, -1).reshape(-1, 6))
    # bfloat16 holds every code exactly.
    assert torch.equal(q.codes_to_indices(codes.bfloat16()), indices)


def test_fsq_is_straight_through():
    q = FSQuantizer(LEVELS)
    levels, _ = cosmos_constants()
    z = torch.randn(1, 6, 2, 3, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    weight = torch.randn(1, 6, 2, 3, 3, generator=torch.Generator().manual_seed(2))
    (q.quantize(z) * weight).sum().backward()
    # d codes / d z = d bound / d z / (L // 2): the rounding passes the gradient through unchanged.
    z_ref = z.detach().clone().requires_grad_()
    (cosmos_bound(z_ref.movedim(1, -1), levels) / (levels // 2) * weight.movedim(1, -1)).sum().backward()
    assert torch.allclose(z.grad, z_ref.grad, rtol=1e-6, atol=0)
    assert z.grad.abs().min() > 0


def test_fsq_bad_input():
    q = FSQuantizer(LEVELS)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 64000\).*from -1 to 5"):
        q.indices_to_codes(torch.tensor([[-1, 5]]))
    with pytest.raises(ValueError, match=r"from 0 to 64000"):
        q.indices_to_codes(torch.tensor([[0, 64_000]]))
    with pytest.raises(TypeError, match=r"integer tensor, got torch\.float32"):
        q.indices_to_codes(torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(B, 6, \.\.\.\) with one channel per level"):
        q.quantize(torch.zeros(1, 5, 2))
    with pytest.raises(TypeError, match="floating-point"):
        q.codes_to_indices(torch.zeros(1, 6, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"levels\[1\] must be an int >= 2"):
        FSQuantizer([8, 1])


# --- the tokenizers --------------------------------------------------------------------------------


def _tiny(name="tiny-dv8x16x16", seed=0, **overrides):
    torch.manual_seed(seed)
    return build_tokenizer(name, **overrides).double().eval()


def _video(shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def test_configs_and_overrides():
    assert DiscreteTokenizerConfig(**COSMOS_DISCRETE_VIDEO) == tokenizer_config("dv8x16x16")
    assert isinstance(build_tokenizer("tiny-dv8x16x16"), DiscreteTokenizer)
    config = tokenizer_config("tiny-dv8x16x16", levels=[8, 5, 5, 5], embedding_dim=4, z_channels=4)
    assert config.levels == (8, 5, 5, 5) and config.codebook_size == 1000 and config.z_channels == 4
    with pytest.raises(ValueError, match="encoder with 2 levels halves space 1 and time 1 times"):
        tokenizer_config("dv8x16x16", channels_mult=[2, 4])
    with pytest.raises(TypeError, match="unknown tokenizer config key"):
        tokenizer_config("dv8x16x16", latent_channels=6)
    with pytest.raises(ValueError, match="embedding_dim = 6 channels with one level, got 4 levels"):
        tokenizer_config("dv8x16x16", levels=[8, 5, 5, 5])
    with pytest.raises(ValueError, match="only quantizer='FSQ' is built"):
        tokenizer_config("dv8x16x16", quantizer="LFQ")
    with pytest.raises(ValueError, match="num_groups must be 1"):
        tokenizer_config("dv8x16x16", num_groups=32)


@pytest.mark.parametrize(
    ("name", "overrides", "pixels", "tokens"),
    [
        ("tiny-dv8x16x16", {}, (2, 3, 1, 32, 48), (2, 1, 2, 3)),
        ("tiny-dv8x16x16", {}, (1, 3, 17, 32, 16), (1, 3, 2, 1)),
        ("tiny-dv8x16x16", {"temporal_compression": 4, "spatial_compression": 8},
         (1, 3, 9, 16, 16), (1, 3, 2, 2)),
        ("di8x8", {"channels": 32, "z_channels": 16}, (2, 3, 16, 24), (2, 2, 3)),
    ],
)  # fmt: skip
def test_tiny_shapes_and_codes(name, overrides, pixels, tokens):
    model = _tiny(name, **overrides)
    with torch.no_grad():
        indices, codes = model.encode(_video(pixels), return_codes=True)
        assert indices.shape == tokens and indices.dtype == torch.int32
        assert codes.shape == (tokens[0], 6, *tokens[1:]) and codes.dtype == torch.float64
        assert 0 <= indices.min() and indices.max() < 64_000
        assert torch.equal(model.encode(_video(pixels)), indices)
        assert torch.equal(model.indices_to_codes(indices), codes)
        assert torch.equal(model.codes_to_indices(codes), indices)
        video = model.decode(indices)
        assert video.shape == pixels and video.dtype == torch.float64
        assert torch.equal(video, model.decode_codes(codes))
        assert torch.equal(model(_video(pixels)), video)


# C1 (NVIDIA/Cosmos@ca2cde0) cosmos1/models/tokenizer/modules/layers3d_test.py checks the released
# JITs on a (1, 3, 17, 512, 512) video: indices (1, 1 + 16 / t, 512 / s, 512 / s).
@pytest.mark.parametrize(
    ("name", "pixels", "tokens"),
    [
        ("dv8x16x16", (1, 3, 17, 512, 512), (1, 3, 32, 32)),
        ("dv8x8x8", (1, 3, 17, 512, 512), (1, 3, 64, 64)),
        ("dv4x8x8", (1, 3, 17, 512, 512), (1, 5, 64, 64)),
        ("dv4x8x8-360p", (1, 3, 17, 512, 512), (1, 5, 64, 64)),
        ("dv8x16x16", (1, 3, 33, 640, 1024), (1, 5, 40, 64)),  # the AR model's 33 frames at 640 x 1024
        ("di8x8", (1, 3, 512, 512), (1, 64, 64)),
        ("di16x16", (1, 3, 512, 512), (1, 32, 32)),
    ],
)
def test_full_shapes_on_meta(name, pixels, tokens):
    with torch.device("meta"):
        model = build_tokenizer(name)
        indices, codes = model.encode(torch.empty(pixels), return_codes=True)
        assert indices.shape == tokens and indices.dtype == torch.int32
        assert codes.shape == (tokens[0], 6, *tokens[1:])
        assert model.decode(indices).shape == pixels


# --- parameter counts ------------------------------------------------------------------------------
# Each count is the sum of the parameters Cosmos Tokenizer's modules create for the config
# (modules/layers3d.py EncoderFactorized / DecoderFactorized, modules/layers2d.py Encoder / Decoder,
# networks/discrete_video.py / discrete_image.py: quant_conv z -> 6 and post_quant_conv 6 -> z, both
# 1x1 with bias; FSQ has none), written with test_tokenizer.py's per-module formulas.


def encoder3d(patch_channels, z):
    return (
        fconv(patch_channels, 128)
        + res(128, 256) + res(256, 256) + hybrid(256)  # down.0: every level but the last has
        + res(256, 512) + res(512, 512) + hybrid(512)  # a downsampler's three convs, active or not
        + 2 * res(512, 512)
        + mid(512) + norm(512) + fconv(512, z)
    )  # fmt: skip


def decoder3d(z, patch_channels):
    return (
        fconv(z, 512) + mid(512)
        + 3 * res(512, 512) + hybrid(512)  # up.2
        + 3 * res(512, 512) + hybrid(512)  # up.1
        + res(512, 256) + 2 * res(256, 256)  # up.0
        + norm(256) + fconv(256, patch_channels)
    )  # fmt: skip


def image_downsamplers(downs):
    return [conv2d(256, 256, 3), conv2d(512, 512, 3)][:downs]  # Downsample convs of down.0, down.1


def image_tokenizer(z, downs):
    encoder = (
        conv2d(3 * 4**2, 128, 3)
        + res2d(128, 256) + res2d(256, 256) + res2d(256, 512) + res2d(512, 512) + 2 * res2d(512, 512)
        + sum(image_downsamplers(downs))
        + mid2d(512) + norm(512) + conv2d(512, z, 3)
    )  # fmt: skip
    decoder = (
        conv2d(z, 512, 3) + mid2d(512)
        + 3 * res2d(512, 512) + 3 * res2d(512, 512) + res2d(512, 256) + 2 * res2d(256, 256)
        + downs * conv2d(512, 512, 3)  # Upsample convs of up.2 (and up.1): 512 wide either way
        + norm(256) + conv2d(256, 3 * 4**2, 3)
    )  # fmt: skip
    return encoder + decoder + conv2d(z, 6, 1) + conv2d(6, z, 1)


def video_tokenizer(patch_size, z):
    channels = 3 * patch_size**3
    return encoder3d(channels, z) + decoder3d(z, channels) + conv(z, 6, 1) + conv(6, z, 1)


TEMPORAL_CONV = conv(512, 512, 3)  # a 512-wide resampler's temporal conv (conv2 down, conv1 up)


@pytest.mark.parametrize(
    ("name", "total", "formula_total", "inert", "formula_inert"),
    [
        # Space and time at down.0 / up.1, space only at down.1 / up.2: their temporal convs idle.
        ("dv8x16x16", 112_472_182, video_tokenizer(4, 16), 1_573_888, 2 * TEMPORAL_CONV),
        # One halving of each, as CV8x8x8: down.1's and up.2's resamplers idle.
        ("dv8x8x8", 112_472_182, video_tokenizer(4, 16), 6_818_816, 2 * hybrid(512)),
        # Space only, at down.0 / up.2 (the patcher does the 4x of time).
        ("dv4x8x8", 112_472_182, video_tokenizer(4, 16), 7_802_624,
         conv(256, 256, 3) + TEMPORAL_CONV + 2 * hybrid(512)),
        # One Haar level (24 channels), z 256; space twice and time once in the network.
        ("dv4x8x8-360p", 114_193_654, video_tokenizer(2, 256), 1_573_888, 2 * TEMPORAL_CONV),
        ("di8x8", 79_004_342, image_tokenizer(256, 1), 0, 0),
        ("di16x16", 83_723_958, image_tokenizer(256, 2), 0, 0),
    ],
)  # fmt: skip
def test_parameter_counts(name, total, formula_total, inert, formula_inert):
    with torch.device("meta"):
        model = build_tokenizer(name)
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == total == formula_total
    assert sum(params[k].numel() for k in inert_parameter_names(model)) == inert == formula_inert
    if name == "dv8x16x16":
        # 112.5 M parameters, 110.9 M of them ever used; the CV8x8x8 networks but for the quant convs.
        assert round(total / 1e6, 1) == 112.5 and round((total - inert) / 1e6, 1) == 110.9
        assert total == 112_472_512 - 2 * conv(16, 16, 1) + conv(16, 6, 1) + conv(6, 16, 1)


def test_level_attention_is_in_the_mid_block_only():
    # curr_res starts at 1024 / patch_size and never reaches 32 in these configs (COSMOS.md 2.3).
    for name in ("dv8x16x16", "dv4x8x8-360p", "di16x16"):
        with torch.device("meta"):
            keys = build_tokenizer(name).state_dict().keys()
        assert not any(".attn." in k for k in keys), name
        assert any(k.startswith("encoder.mid.attn_1") for k in keys)
    assert attn(512) > 0


# --- checkpoint keys -------------------------------------------------------------------------------


def _jit_state_dicts(model):
    """What ``torch.jit.load(encoder.jit / decoder.jit).state_dict()`` holds for a Cosmos discrete
    tokenizer: the networks' keys plus the FSQ constants under ``quantizer.`` / ``inv_quant.quantizer.``."""
    state = model.state_dict()
    levels, basis = cosmos_constants()
    codebook = cosmos_indices_to_codes(torch.arange(64_000), levels, basis).float()
    fsq = {"_levels": levels, "_basis": basis, "implicit_codebook": codebook}
    encoder = {k: v for k, v in state.items() if k.startswith(("encoder.", "quant_conv."))}
    decoder = {k: v for k, v in state.items() if k.startswith(("post_quant_conv.", "decoder."))}
    encoder.update({f"quantizer.{k}": v for k, v in fsq.items()})
    decoder.update({f"inv_quant.quantizer.{k}": v for k, v in fsq.items()})
    return encoder, decoder


def test_load_cosmos_jit_keys():
    source, target = _tiny(seed=0), _tiny(seed=1)
    encoder, decoder = _jit_state_dicts(source)
    assert "quant_conv.conv3d.weight" in encoder and "post_quant_conv.conv3d.weight" in decoder
    loaded = load_cosmos_tokenizer_state_dict(target, encoder)
    assert loaded.encoder and not loaded.decoder
    assert set(loaded.skipped_keys) == {
        "quantizer._levels",
        "quantizer._basis",
        "quantizer.implicit_codebook",
    }
    loaded = load_cosmos_tokenizer_state_dict(target, decoder)
    assert loaded.decoder and len(loaded.skipped_keys) == 3
    x = _video((1, 3, 9, 32, 32))
    with torch.no_grad():
        assert torch.equal(target.encode(x), source.encode(x))
        assert torch.equal(target(x), source(x))


def test_load_refuses_other_levels_and_shapes():
    model = _tiny()
    encoder, _ = _jit_state_dicts(model)
    with pytest.raises(ValueError, match=r"quantizer._levels = \[8, 8, 8, 5, 5, 4\] does not match"):
        load_cosmos_tokenizer_state_dict(
            model, {**encoder, "quantizer._levels": torch.tensor([8, 8, 8, 5, 5, 4])}
        )
    with pytest.raises(ValueError, match=r"shape mismatch for 'quant_conv\.conv3d\.weight'"):
        load_cosmos_tokenizer_state_dict(
            model, {**encoder, "quant_conv.conv3d.weight": torch.zeros(16, 16, 1, 1, 1)}
        )
    # A continuous tokenizer has no quantizer: the key is unknown there.
    with pytest.raises(ValueError, match=r"unexpected key 'quantizer\._levels'"):
        load_cosmos_tokenizer_state_dict(
            build_tokenizer("tiny-cv8x8x8"), {"quantizer._levels": torch.tensor(LEVELS)}
        )


# --- streaming, kernels, bad input ------------------------------------------------------------------


def test_chunked_encode_and_decode_are_exact():
    model = _tiny()
    x = _video((1, 3, 25, 32, 32), seed=3)
    with torch.no_grad():
        whole, codes = model.encode(x, return_codes=True)
        for chunk in (9, 17):
            indices, chunk_codes = model.encode(x, chunk_frames=chunk, return_codes=True)
            assert torch.equal(indices, whole) and torch.equal(chunk_codes, codes)
        video = model.decode(whole)
        for chunk in (2, 3):
            assert torch.allclose(model.decode(whole, chunk_frames=chunk), video, rtol=0, atol=1e-12)


def test_runs_on_the_tokenizer_kernels(monkeypatch):
    calls = []
    for op in (
        "haar3d_analysis",
        "haar3d_synthesis",
        "group_norm_silu",
        "haar2d_analysis",
        "haar2d_synthesis",
    ):
        original = getattr(ops, op)

        def counted(*args, _op=op, _original=original, **kwargs):
            calls.append(_op)
            return _original(*args, **kwargs)

        monkeypatch.setattr(ops, op, counted)
    with torch.no_grad():
        _tiny()(_video((1, 3, 9, 32, 32)))
        assert {"haar3d_analysis", "haar3d_synthesis", "group_norm_silu"} <= set(calls)
        calls.clear()
        _tiny("di8x8", channels=32, z_channels=16)(_video((1, 3, 16, 16)))
        assert {"haar2d_analysis", "haar2d_synthesis", "group_norm_silu"} <= set(calls)


def test_bad_inputs_say_what_would_work():
    model = _tiny()
    with pytest.raises(ValueError, match=r"needs T = 1 \+ 8k frames \(1, 9, 17, 25, \.\.\.\), got 12"):
        model.encode(_video((1, 3, 12, 32, 32)))
    with pytest.raises(ValueError, match="divisible by spatial_compression = 16"):
        model.encode(_video((1, 3, 9, 24, 32)))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 64000\).*from 0 to 70000"):
        model.decode(torch.tensor([0, 70_000]).view(1, 1, 1, 2))
    with pytest.raises(ValueError, match=r"indices must be \(B, T, H, W\) video tokens"):
        model.decode(torch.zeros(1, 6, 1, 2, 2, dtype=torch.int32))
    with pytest.raises(TypeError, match="integer tensor"):
        model.decode(torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"codes must be \(B, C, T, H, W\) video with C = 6"):
        model.decode_codes(torch.zeros(1, 16, 1, 2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="chunk_frames must be None or 1 \\+ 8m"):
        model.encode(_video((1, 3, 9, 32, 32)), chunk_frames=4)


# --- training --------------------------------------------------------------------------------------


def test_pixel_loss_reaches_the_encoder_through_the_codes():
    model = build_tokenizer("tiny-dv8x16x16")
    video = _video((1, 3, 9, 32, 32)).float()
    (model(video) - video).abs().mean().backward()
    grad = model.encoder.conv_in[0].conv3d.weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_pooled_video_target_for_a_dv8x16x16():
    video = torch.arange(17, dtype=torch.float32).view(1, 1, 17, 1, 1).expand(2, 3, 17, 32, 48)
    target = pooled_video_target(video, temporal=8, spatial=16, frames_per_latent=2)
    assert target.shape == (2, 6, 3, 2, 3)
    assert target[0, ::3, 0, 0, 0].tolist() == [0.0, 0.0]
    assert target[0, ::3, 1, 0, 0].tolist() == [4.0, 8.0]
    assert target[0, ::3, 2, 0, 0].tolist() == [12.0, 16.0]
    with pytest.raises(ValueError, match="frames_per_latent = 3 must divide temporal = 8"):
        pooled_video_target(video, frames_per_latent=3)


# Measured on 2 shared CPU cores (torch 2.13): the untrained tiny DV tokenizer reconstructs the 2
# training clips at 4.6 dB, after 40 steps (~12 s) at 17.9 dB.
TRAINED_PSNR_DB = 14.0


@pytest.mark.usefixtures("one_thread")
def test_training_the_tiny_dv_tokenizer_raises_its_psnr():
    torch.manual_seed(0)
    model = build_tokenizer("tiny-dv8x16x16")
    clips, masks = physics_tokenizer_batch(0, 2, 9)

    def reconstruction_psnr():
        with torch.no_grad():
            return psnr(model.decode(model.encode(clips)).clamp(-1, 1), clips)

    before = reconstruction_psnr()
    phase = TokenizerPhase(40, 3e-3, frames=9, clips=2)
    losses = train_tokenizer(model, [phase], batches=lambda step, n, frames: (clips, masks), warmup_steps=10)
    after = reconstruction_psnr()
    assert len(losses) == 40 and losses[-1] < losses[0] / 4
    assert after > TRAINED_PSNR_DB and after > before + 8, (before, after)
    # The latent tie works on the codes at the tokenizer's own compression (6 codes: 2 frames).
    tied = train_tokenizer(model, [TokenizerPhase(1, 1e-4, frames=9, clips=2)], latent_tie=1.0)
    assert len(tied) == 1 and tied[0] > 0
    with pytest.raises(ValueError, match="latent_tie needs a video tokenizer"):
        train_tokenizer(
            build_tokenizer("di8x8", channels=32, z_channels=16),
            [TokenizerPhase(1, 1e-4, frames=1, clips=1)],
            batches=lambda step, n, frames: (clips[:1, :, 0], masks[:1, :, 0]),
            latent_tie=1.0,
        )
