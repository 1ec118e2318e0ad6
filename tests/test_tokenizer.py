"""The Cosmos continuous tokenizers: shapes, causality, parameter counts and names, checkpoint loading,
latent normalization, and each causal layer against a plain re-statement of what it computes."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cosmos_kernels.models import (
    TOKENIZER_CONFIGS,
    build_tokenizer,
    denormalize_latents,
    inert_parameter_names,
    load_cosmos_tokenizer_state_dict,
    load_latent_stats,
    normalize_latents,
    tokenizer_config,
)
from cosmos_kernels.nn import (
    AttnBlock,
    CausalAttnBlock,
    CausalConv3d,
    CausalHybridDownsample3d,
    CausalHybridUpsample3d,
    CausalResnetBlockFactorized3d,
    CausalTemporalAttnBlock,
    ResnetBlock,
)

# Cosmos Tokenizer's networks/configs.py `continuous_video` dict, less its `name`.
COSMOS_CONTINUOUS_VIDEO = dict(
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
    latent_channels=16,
    z_channels=16,
    z_factor=1,
    num_groups=1,
    legacy_mode=False,
    spatial_compression=8,
    temporal_compression=8,
    formulation="AE",
    encoder="FACTORIZED",
    decoder="FACTORIZED",
)


def _tiny(name, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_tokenizer(name, **overrides).double().eval()


def _video(shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


# --- shapes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "pixels", "latents"),
    [
        ("tiny-cv8x8x8", (2, 3, 1, 16, 24), (2, 16, 1, 2, 3)),
        ("tiny-cv8x8x8", (1, 3, 17, 32, 16), (1, 16, 3, 4, 2)),
        ("tiny-cv4x8x8", (1, 3, 9, 16, 16), (1, 16, 3, 2, 2)),
        ("tiny-ci8x8", (2, 3, 32, 24), (2, 16, 4, 3)),
    ],
)
def test_tiny_shapes(name, pixels, latents):
    model = _tiny(name)
    with torch.no_grad():
        z = model.encode(_video(pixels))
        assert z.shape == latents
        assert model.decode(z).shape == pixels


@pytest.mark.parametrize(
    ("name", "overrides", "pixels", "latents"),
    [
        ("cv8x8x8", {}, (1, 3, 121, 704, 1280), (1, 16, 16, 88, 160)),
        ("cv8x8x8", {}, (2, 3, 1, 64, 64), (2, 16, 1, 8, 8)),
        ("cv4x8x8", {}, (1, 3, 49, 64, 96), (1, 16, 13, 8, 12)),
        ("cv8x8x8", {"spatial_compression": 16}, (1, 3, 17, 512, 512), (1, 16, 3, 32, 32)),  # CV8x16x16
        ("ci8x8", {}, (1, 3, 1024, 512), (1, 16, 128, 64)),
    ],
)
def test_full_shapes_on_meta(name, overrides, pixels, latents):
    with torch.device("meta"):
        model = build_tokenizer(name, **overrides)
        z = model.encode(torch.empty(pixels))
        assert z.shape == latents
        assert model.decode(z).shape == pixels


@pytest.mark.parametrize("name", ["tiny-cv8x8x8", "tiny-ci8x8"])
def test_lower_precision(name):
    """float32, float16 and bfloat16 all run on CPU, close to the same weights in float64."""
    model = _tiny(name)
    x = _video((1, 3, 9, 32, 32) if name.startswith("tiny-cv") else (1, 3, 32, 32))
    with torch.no_grad():
        ref = model(x)
        for dtype, tolerance in ((torch.float32, 1e-5), (torch.float16, 5e-2), (torch.bfloat16, 5e-2)):
            out = model.to(dtype)(x.to(dtype))
            assert out.dtype == dtype
            assert ((out.double() - ref).norm() / ref.norm()).item() < tolerance, dtype


def test_bad_inputs_say_what_would_work():
    video, v4, image = _tiny("tiny-cv8x8x8"), _tiny("tiny-cv4x8x8"), _tiny("tiny-ci8x8")
    with pytest.raises(ValueError, match=r"needs T = 1 \+ 8k frames \(1, 9, 17, 25, \.\.\.\), got 12"):
        video.encode(_video((1, 3, 12, 16, 16)))
    with pytest.raises(ValueError, match=r"needs T = 1 \+ 4k frames \(1, 5, 9, 13, \.\.\.\), got 7"):
        v4.encode(_video((1, 3, 7, 16, 16)))
    with pytest.raises(ValueError, match=r"divisible by spatial_compression = 8, got H = 30, W = 16"):
        video.encode(_video((1, 3, 9, 30, 16)))
    with pytest.raises(ValueError, match=r"divisible by spatial_compression = 8, got H = 16, W = 20"):
        image.encode(_video((1, 3, 16, 20)))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\) video with C = 3, got shape \(1, 3, 16, 16\)"):
        video.encode(_video((1, 3, 16, 16)))
    with pytest.raises(ValueError, match=r"with C = 3, got shape \(1, 4, 9, 16, 16\)"):
        video.encode(_video((1, 4, 9, 16, 16)))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) images with C = 3"):
        image.encode(_video((1, 3, 1, 16, 16)))
    with pytest.raises(ValueError, match=r"latents must be .* with C = 16, got shape \(1, 8, 2, 2, 2\)"):
        video.decode(_video((1, 8, 2, 2, 2)))
    with pytest.raises(TypeError, match=r"must be a torch\.Tensor"):
        video.encode([1.0])


def test_configs_and_overrides():
    with pytest.raises(
        ValueError, match=r"unknown tokenizer config 'cv9'; known: cv8x8x8, cv4x8x8, ci8x8, tiny-cv8x8x8"
    ):
        build_tokenizer("cv9")
    with pytest.raises(TypeError, match=r"\['chanels', 'colour'\].*valid keys: .*channels, channels_mult"):
        build_tokenizer("tiny-cv8x8x8", chanels=8, colour=1)
    # A Cosmos config dict maps one to one (lists become tuples).
    assert tokenizer_config("cv8x8x8", **COSMOS_CONTINUOUS_VIDEO) == TOKENIZER_CONFIGS["cv8x8x8"]
    assert tokenizer_config("tiny-cv8x8x8", attn_resolutions=[16, 32]).attn_resolutions == (16, 32)
    bad = [
        ({"num_groups": 32}, "num_groups must be 1"),
        ({"spatial_compression": 32}, "halves space 2 and time 1 times, .* needs 3 and 1"),
        ({"temporal_compression": 2}, "temporal_compression must be a power of two >= 4"),
        ({"patch_size": 3}, "patch_size must be a power of two >= 2"),
        ({"patch_method": "rearrange"}, "only patch_method='haar'"),
        ({"formulation": "VAE"}, "only formulation='AE'"),
        ({"encoder": "Default"}, "encoder and decoder must both be"),
    ]
    for overrides, message in bad:
        with pytest.raises(ValueError, match=message):
            tokenizer_config("tiny-cv8x8x8", **overrides)
    with pytest.raises(ValueError, match="divisible by num_groups = 32"):
        tokenizer_config("tiny-ci8x8", num_groups=32)


# --- causality -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "overrides", "frames"),
    [
        ("tiny-cv8x8x8", {}, 17),
        ("tiny-cv4x8x8", {}, 9),
        # Attention inside the levels too (Cosmos builds it where the nominal resolution is listed).
        ("tiny-cv8x8x8", {"resolution": 32, "attn_resolutions": (4,)}, 17),
    ],
    ids=["cv8x8x8", "cv4x8x8", "cv8x8x8-level-attention"],
)
def test_causality(name, overrides, frames):
    """A latent frame is bit-identical when only a later input frame changes, and vice versa."""
    model = _tiny(name, **overrides)
    t = model.config.temporal_compression
    x = _video((2, 3, frames, 16, 16))
    changed = x.clone()
    changed[:, :, -1] = _video((2, 3, 16, 16), seed=1)
    with torch.no_grad():
        z, z_changed = model.encode(x), model.encode(changed)
        assert torch.equal(z[:, :, :-1], z_changed[:, :, :-1])
        assert not torch.equal(z[:, :, -1], z_changed[:, :, -1])

        z_changed = z.clone()
        z_changed[:, :, -1] += 1
        y, y_changed = model.decode(z), model.decode(z_changed)
    # The last latent frame decodes to the last t frames and nothing earlier.
    assert torch.equal(y[:, :, :-t], y_changed[:, :, :-t])
    assert all(not torch.equal(y[:, :, i], y_changed[:, :, i]) for i in range(frames - t, frames))


def test_level_attention_has_cosmos_names():
    keys = build_tokenizer("tiny-cv8x8x8", resolution=32, attn_resolutions=(4,)).state_dict()
    # Encoder levels see nominal resolutions 8, 4, 2; decoder levels (run from up.2) 2, 4, 8.
    assert "encoder.down.1.attn.1.0.q.conv3d.weight" in keys
    assert "encoder.down.1.attn.1.1.norm.norm.bias" in keys
    assert "decoder.up.1.attn.2.1.proj_out.conv3d.weight" in keys
    assert not any(".attn." in k for k in keys if k.startswith(("encoder.down.0", "decoder.up.2")))


# --- parameter counts and names --------------------------------------------------------------------


def conv(cin, cout, taps):
    return cin * cout * taps + cout  # weight + bias


def fconv(cin, cout):
    return conv(cin, cout, 9) + conv(cout, cout, 3)  # (1, 3, 3) then (3, 1, 1)


def norm(c):
    return 2 * c


def res(cin, cout):
    shortcut = conv(cin, cout, 1) if cin != cout else 0
    return norm(cin) + fconv(cin, cout) + norm(cout) + fconv(cout, cout) + shortcut


def attn(c):
    return norm(c) + 4 * conv(c, c, 1)  # q, k, v, proj_out


def mid(c):
    return 2 * res(c, c) + 2 * attn(c)  # block_1, block_2; spatial and temporal attention


def hybrid(c):
    return conv(c, c, 9) + conv(c, c, 3) + conv(c, c, 1)  # conv1, conv2, conv3 of a down/upsampler


CV_ENCODER = (
    fconv(3 * 4**3, 128)
    + res(128, 256) + res(256, 256) + hybrid(256)  # down.0, halves space and time
    + res(256, 512) + res(512, 512) + hybrid(512)  # down.1, its downsampler inert
    + 2 * res(512, 512)  # down.2
    + mid(512) + norm(512) + fconv(512, 16)
)  # fmt: skip
CV8_DECODER = (
    fconv(16, 512) + mid(512)
    + 3 * res(512, 512) + hybrid(512)  # up.2, its upsampler inert
    + 3 * res(512, 512) + hybrid(512)  # up.1, doubles time and space
    + res(512, 256) + 2 * res(256, 256)  # up.0
    + norm(256) + fconv(256, 3 * 4**3)
)  # fmt: skip
CV4_DECODER = (  # channels_mult (2, 4): up.1 doubles space only, up.0
    fconv(16, 512) + mid(512)
    + 3 * res(512, 512) + hybrid(512)
    + res(512, 256) + 2 * res(256, 256)
    + norm(256) + fconv(256, 3 * 4**3)
)  # fmt: skip
QUANT = 2 * conv(16, 16, 1)  # quant_conv, post_quant_conv
# down.0's temporal conv, all of down.1's downsampler, up.1's temporal conv
CV4_INERT = conv(256, 256, 3) + hybrid(512) + conv(512, 512, 3)


def conv2d(cin, cout, k):
    return cin * cout * k * k + cout


def res2d(cin, cout):
    shortcut = conv2d(cin, cout, 1) if cin != cout else 0
    return norm(cin) + conv2d(cin, cout, 3) + norm(cout) + conv2d(cout, cout, 3) + shortcut


def mid2d(c):
    return 2 * res2d(c, c) + norm(c) + 4 * conv2d(c, c, 1)


CI_ENCODER = (
    conv2d(3 * 4**2, 128, 3)
    + res2d(128, 256) + res2d(256, 256) + conv2d(256, 256, 3)  # down.0 and its Downsample
    + res2d(256, 512) + res2d(512, 512) + 2 * res2d(512, 512)  # down.1, down.2
    + mid2d(512) + norm(512) + conv2d(512, 16, 3)
)  # fmt: skip
CI_DECODER = (
    conv2d(16, 512, 3) + mid2d(512)
    + 3 * res2d(512, 512) + conv2d(512, 512, 3)  # up.2 and its Upsample (the first level to run)
    + 3 * res2d(512, 512) + res2d(512, 256) + 2 * res2d(256, 256)  # up.1, up.0
    + norm(256) + conv2d(256, 3 * 4**2, 3)
)  # fmt: skip


@pytest.mark.parametrize(
    ("name", "total", "inert", "formula_total", "formula_inert"),
    [
        # Cosmos Tokenizer builds CV8x8x8 with 112.5 M parameters, 105.7 M of them ever used.
        ("cv8x8x8", 112_472_512, 6_818_816, CV_ENCODER + CV8_DECODER + QUANT, 2 * hybrid(512)),
        ("cv4x8x8", 90_176_448, 4_393_216, CV_ENCODER + CV4_DECODER + QUANT, CV4_INERT),
        ("ci8x8", 76_789_472, 0, CI_ENCODER + CI_DECODER + QUANT, 0),
    ],
)  # fmt: skip
def test_parameter_counts(name, total, inert, formula_total, formula_inert):
    with torch.device("meta"):
        model = build_tokenizer(name)
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == total == formula_total
    assert sum(params[k].numel() for k in inert_parameter_names(model)) == inert == formula_inert
    if name == "cv8x8x8":
        assert round(total / 1e6, 1) == 112.5 and round((total - inert) / 1e6, 1) == 105.7
        assert {k.rsplit(".", 3)[0] for k in inert_parameter_names(model)} == {
            "encoder.down.1.downsample",
            "decoder.up.2.upsample",
        }


def test_cosmos_key_names_and_shapes():
    with torch.device("meta"):
        video, image = build_tokenizer("cv8x8x8"), build_tokenizer("ci8x8")
    shapes = {k: tuple(v.shape) for k, v in video.state_dict().items()}
    expected = {
        "encoder.conv_in.0.conv3d.weight": (128, 192, 1, 3, 3),
        "encoder.conv_in.1.conv3d.weight": (128, 128, 3, 1, 1),
        "encoder.down.0.block.0.norm1.norm.weight": (128,),
        "encoder.down.0.block.0.conv1.0.conv3d.weight": (256, 128, 1, 3, 3),
        "encoder.down.0.block.0.conv2.1.conv3d.weight": (256, 256, 3, 1, 1),
        "encoder.down.0.block.0.nin_shortcut.conv3d.weight": (256, 128, 1, 1, 1),
        "encoder.down.0.downsample.conv1.conv3d.weight": (256, 256, 1, 3, 3),
        "encoder.down.0.downsample.conv2.conv3d.weight": (256, 256, 3, 1, 1),
        "encoder.down.1.downsample.conv3.conv3d.bias": (512,),
        "encoder.mid.attn_1.0.q.conv3d.weight": (512, 512, 1, 1, 1),
        "encoder.mid.attn_1.1.proj_out.conv3d.weight": (512, 512, 1, 1, 1),
        "encoder.mid.block_2.norm2.norm.bias": (512,),
        "encoder.norm_out.norm.weight": (512,),
        "encoder.conv_out.0.conv3d.weight": (16, 512, 1, 3, 3),
        "encoder.conv_out.1.conv3d.weight": (16, 16, 3, 1, 1),
        "quant_conv.conv3d.weight": (16, 16, 1, 1, 1),
        "post_quant_conv.conv3d.bias": (16,),
        "decoder.conv_in.0.conv3d.weight": (512, 16, 1, 3, 3),
        "decoder.up.2.block.2.conv2.0.conv3d.weight": (512, 512, 1, 3, 3),
        "decoder.up.1.upsample.conv1.conv3d.weight": (512, 512, 3, 1, 1),
        "decoder.up.1.upsample.conv2.conv3d.weight": (512, 512, 1, 3, 3),
        "decoder.up.0.block.0.nin_shortcut.conv3d.weight": (256, 512, 1, 1, 1),
        "decoder.norm_out.norm.weight": (256,),
        "decoder.conv_out.0.conv3d.weight": (192, 256, 1, 3, 3),
        "decoder.conv_out.1.conv3d.weight": (192, 192, 3, 1, 1),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any("patcher" in k for k in shapes)  # Haar constants live in the op, not in buffers
    shapes = {k: tuple(v.shape) for k, v in image.state_dict().items()}
    expected = {
        "encoder.conv_in.weight": (128, 48, 3, 3),
        "encoder.down.0.block.0.norm1.weight": (128,),
        "encoder.down.0.downsample.conv.weight": (256, 256, 3, 3),
        "encoder.mid.attn_1.q.weight": (512, 512, 1, 1),
        "quant_conv.weight": (16, 16, 1, 1),
        "decoder.up.2.upsample.conv.weight": (512, 512, 3, 3),
        "decoder.conv_out.weight": (48, 256, 3, 3),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert not any("down.1.downsample" in k or "up.1.upsample" in k for k in shapes)


# --- checkpoint loading ----------------------------------------------------------------------------

HAAR_BUFFERS_3D = {  # what cosmos-predict1 (persistent buffers) adds to a state dict
    "encoder.patcher3d.wavelets": torch.full((2,), 2**-0.5),
    "encoder.patcher3d._arange": torch.arange(2),
    "encoder.patcher3d.patch_size_buffer": torch.tensor([4], dtype=torch.int32),
    "decoder.unpatcher3d.wavelets": torch.full((2,), 2**-0.5),
    "decoder.unpatcher3d._arange": torch.arange(2),
}


def _cosmos_state_dict(model, buffers=HAAR_BUFFERS_3D):
    return {**{k: v.clone() for k, v in model.state_dict().items()}, **buffers}


def _halves_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    inert = inert_parameter_names(a)
    same = {k: torch.equal(sa[k], sb[k]) for k in sa if k not in inert}
    enc = all(v for k, v in same.items() if k.startswith(("encoder.", "quant_conv.")))
    dec = all(v for k, v in same.items() if k.startswith(("decoder.", "post_quant_conv.")))
    return enc, dec


def test_load_cosmos_state_dict_round_trip():
    source, target = _tiny("tiny-cv8x8x8", seed=0), _tiny("tiny-cv8x8x8", seed=1)
    x = _video((1, 3, 9, 16, 16))
    loaded = load_cosmos_tokenizer_state_dict(target, _cosmos_state_dict(source))
    assert (loaded.encoder, loaded.decoder) == (True, True)
    assert set(loaded.skipped_keys) == set(HAAR_BUFFERS_3D)
    with torch.no_grad():
        assert torch.equal(target.encode(x), source.encode(x))
        assert torch.equal(target(x), source(x))


def test_load_without_inert_weights_and_one_half():
    source = _tiny("tiny-cv8x8x8", seed=0)
    state = _cosmos_state_dict(source)
    # cosmos-predict1 builds inactive down/upsamplers without weights: still complete.
    without_inert = {k: v for k, v in state.items() if k not in inert_parameter_names(source)}
    target = _tiny("tiny-cv8x8x8", seed=1)
    load_cosmos_tokenizer_state_dict(target, without_inert)
    assert _halves_equal(source, target) == (True, True)

    encoder_only = {k: v for k, v in state.items() if k.startswith(("encoder.", "quant_conv."))}
    target = _tiny("tiny-cv8x8x8", seed=1)
    loaded = load_cosmos_tokenizer_state_dict(target, encoder_only)
    assert (loaded.encoder, loaded.decoder) == (True, False)
    assert _halves_equal(source, target) == (True, False)

    decoder_only = {k: v for k, v in state.items() if k.startswith(("decoder.", "post_quant_conv."))}
    target = _tiny("tiny-cv8x8x8", seed=1)
    loaded = load_cosmos_tokenizer_state_dict(target, decoder_only)
    assert (loaded.encoder, loaded.decoder) == (False, True)
    assert _halves_equal(source, target) == (False, True)


def test_load_refuses_mismatches_naming_the_key():
    source = _tiny("tiny-cv8x8x8")
    cases = [
        (
            {"encoder.conv_in.0.conv3d.weight": torch.zeros(8, 192, 1, 3, 5)},
            r"shape mismatch for 'encoder\.conv_in\.0\.conv3d\.weight': state dict \(8, 192, 1, 3, 5\), "
            r"model \(8, 192, 1, 3, 3\)",
        ),
        ({"encoder.down.0.block.0.norm3.norm.weight": torch.zeros(8)}, r"unexpected key 'encoder\.down\.0"),
        ({"distribution.scale": torch.zeros(1)}, "unexpected key 'distribution.scale'"),
        ({"encoder.patcher3d.wavelets": torch.ones(2)}, "another patch method or patch size"),
        ({"encoder.patcher3d.patch_size_buffer": torch.tensor([8])}, "another patch method or patch size"),
    ]  # fmt: skip
    for change, message in cases:
        target = _tiny("tiny-cv8x8x8", seed=1)
        before = {k: v.clone() for k, v in target.state_dict().items()}
        with pytest.raises(ValueError, match=message):
            load_cosmos_tokenizer_state_dict(target, {**_cosmos_state_dict(source), **change})
        assert all(torch.equal(v, target.state_dict()[k]) for k, v in before.items())  # nothing loaded
    state = _cosmos_state_dict(source)
    del state["decoder.conv_out.1.conv3d.bias"]
    with pytest.raises(ValueError, match=r"missing key 'decoder\.conv_out\.1\.conv3d\.bias'"):
        load_cosmos_tokenizer_state_dict(source, state)
    with pytest.raises(ValueError, match="no tokenizer weights"):
        load_cosmos_tokenizer_state_dict(source, dict(HAAR_BUFFERS_3D))


def test_load_image_tokenizer():
    source, target = _tiny("tiny-ci8x8", seed=0), _tiny("tiny-ci8x8", seed=1)
    buffers = {
        "encoder.patcher.wavelets": torch.full((2,), 2**-0.5),
        "decoder.unpatcher._arange": torch.arange(2),
    }
    loaded = load_cosmos_tokenizer_state_dict(target, _cosmos_state_dict(source, buffers))
    assert (loaded.encoder, loaded.decoder, set(loaded.skipped_keys)) == (True, True, set(buffers))
    x = _video((2, 3, 16, 16))
    with torch.no_grad():
        assert torch.equal(target(x), source(x))


# --- latent normalization --------------------------------------------------------------------------


def test_latent_normalization(tmp_path):
    gen = torch.Generator().manual_seed(0)
    mean = torch.randn(16, 5, generator=gen, dtype=torch.float64)  # 5 latent frames of statistics
    std = torch.rand(16, 5, generator=gen, dtype=torch.float64) + 0.5
    torch.save((mean.flatten(), std.flatten()), tmp_path / "mean_std.pt")
    mean_read, std_read = load_latent_stats(tmp_path / "mean_std.pt")

    latents = torch.randn(2, 16, 3, 4, 6, generator=gen, dtype=torch.float64)
    z = normalize_latents(latents, mean_read, std_read)
    expected = (latents - mean[:, :3].reshape(1, 16, 3, 1, 1)) / std[:, :3].reshape(1, 16, 3, 1, 1) * 0.5
    torch.testing.assert_close(z, expected, rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(denormalize_latents(z, mean_read, std_read), latents, rtol=1e-14, atol=1e-14)

    # Image latents use the first frame's statistics; one column applies to every frame.
    image = latents[:, :, 0]
    expected = (image - mean[:, :1].reshape(1, 16, 1, 1)) / std[:, :1].reshape(1, 16, 1, 1) * 0.25
    torch.testing.assert_close(normalize_latents(image, mean_read, std_read, sigma_data=0.25), expected)
    z = normalize_latents(latents, mean[:, 0], std[:, 0])
    torch.testing.assert_close(z, (latents - mean[:, 0, None, None, None]) / std[:, 0, None, None, None] / 2)

    # Identity statistics: only sigma_data scales.
    torch.testing.assert_close(normalize_latents(latents), latents * 0.5, rtol=0, atol=0)
    torch.testing.assert_close(denormalize_latents(latents), latents * 2, rtol=0, atol=0)

    with pytest.raises(ValueError, match="statistics for 2 latent frames, the latents have 3"):
        normalize_latents(latents, mean[:, :2], std[:, :2])
    with pytest.raises(ValueError, match="both mean and std"):
        normalize_latents(latents, mean)
    torch.save(mean, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"must hold a \(mean, std\) pair"):
        load_latent_stats(tmp_path / "bad.pt")


# --- layers against a plain re-statement -----------------------------------------------------------


def _randomize(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return module.double()


def ref_causal_conv(x, conv3d, past, space_pad, stride=(1, 1, 1)):
    """Frame 0 repeated ``past`` times in front, zeros around H and W, then a plain conv."""
    x = torch.cat([x[:, :, :1]] * past + [x], dim=2)
    x = F.pad(x, (space_pad,) * 4)
    return F.conv3d(x, conv3d.weight, conv3d.bias, stride=stride)


def ref_factorized(x, seq):
    return ref_causal_conv(ref_causal_conv(x, seq[0].conv3d, 0, 1), seq[1].conv3d, 2, 0)


def ref_frame_norm(x, gn):
    frames = [F.group_norm(x[:, :, t], 1, gn.weight, gn.bias, eps=1e-6) for t in range(x.shape[2])]
    return torch.stack(frames, dim=2)


def ref_resblock(x, blk):
    h = ref_factorized(F.silu(ref_frame_norm(x, blk.norm1.norm)), blk.conv1)
    h = ref_factorized(F.silu(ref_frame_norm(h, blk.norm2.norm)), blk.conv2)
    shortcut = (
        x if isinstance(blk.nin_shortcut, nn.Identity) else F.conv3d(x, *blk.nin_shortcut.conv3d.parameters())
    )
    return shortcut + h


def ref_downsample(x, m):
    if m.spatial_down:
        mean = sum(x[..., i::2, j::2] for i in (0, 1) for j in (0, 1)) / 4
        x = ref_causal_conv(F.pad(x, (0, 1, 0, 1)), m.conv1.conv3d, 0, 0, stride=(1, 2, 2)) + mean
    if m.temporal_down:
        padded = torch.cat([x[:, :, :1], x], dim=2)  # 1 + 2k frames -> 2 + 2k
        mean = (padded[:, :, 0::2] + padded[:, :, 1::2]) / 2  # frame 0 alone, then pairs (1, 2), (3, 4) ...
        x = ref_causal_conv(padded, m.conv2.conv3d, 1, 0, stride=(2, 1, 1)) + mean
    return F.conv3d(x, *m.conv3.conv3d.parameters()) if m.spatial_down or m.temporal_down else x


def ref_upsample(x, m):
    if m.temporal_up:
        x = x[:, :, [0] + [t for t in range(1, x.shape[2]) for _ in (0, 1)]]  # 0, 1, 1, 2, 2, ...
        x = x + ref_causal_conv(x, m.conv1.conv3d, 2, 0)
    if m.spatial_up:
        x = x[:, :, :, torch.arange(2 * x.shape[3]) // 2][..., torch.arange(2 * x.shape[4]) // 2]
        x = x + ref_causal_conv(x, m.conv2.conv3d, 0, 1)
    return F.conv3d(x, *m.conv3.conv3d.parameters()) if m.spatial_up or m.temporal_up else x


def ref_attention(x, m, temporal):
    """Explicit single-head softmax attention, one sequence (a frame, or one position over time) at a time."""
    h = ref_frame_norm(x, m.norm.norm)
    q, k, v = (F.conv3d(h, *p.conv3d.parameters()) for p in (m.q, m.k, m.v))
    b, c, t, height, width = q.shape
    out = torch.empty_like(q)
    if temporal:
        later = torch.ones(t, t).triu(1).bool()  # a frame never attends to a later one
        for i, y, w in itertools.product(range(b), range(height), range(width)):
            qs, ks, vs = (z[i, :, :, y, w].T for z in (q, k, v))  # (t, c)
            scores = (qs @ ks.T / c**0.5).masked_fill(later, float("-inf"))
            out[i, :, :, y, w] = (scores.softmax(-1) @ vs).T
    else:
        for i, frame in itertools.product(range(b), range(t)):
            qs, ks, vs = (z[i, :, frame].reshape(c, -1).T for z in (q, k, v))  # (h * w, c)
            scores = qs @ ks.T / c**0.5
            out[i, :, frame] = (scores.softmax(-1) @ vs).T.reshape(c, height, width)
    return x + F.conv3d(out, *m.proj_out.conv3d.parameters())


@pytest.mark.parametrize(
    ("kernel", "stride", "time_stride", "padding", "past"),
    [((3, 3, 3), 1, 1, 1, 2), ((1, 3, 3), 2, 1, 0, 0), ((3, 1, 1), 1, 2, 0, 1), ((3, 1, 1), 1, 1, 0, 2)],
)
def test_causal_conv3d(kernel, stride, time_stride, padding, past):
    conv = _randomize(CausalConv3d(3, 5, kernel, stride=stride, time_stride=time_stride, padding=padding))
    x = _video((2, 3, 5, 7, 6))
    ref = ref_causal_conv(x, conv.conv3d, past, padding, stride=(time_stride, stride, stride))
    torch.testing.assert_close(conv(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("cin", "cout"), [(4, 6), (6, 6)])
def test_resnet_block(cin, cout):
    block = _randomize(CausalResnetBlockFactorized3d(cin, cout)).eval()
    x = _video((2, cin, 5, 6, 4))
    torch.testing.assert_close(block(x), ref_resblock(x, block), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("spatial", "temporal"), [(True, True), (True, False), (False, True), (False, False)]
)
def test_hybrid_downsample_and_upsample(spatial, temporal):
    down = _randomize(CausalHybridDownsample3d(4, spatial_down=spatial, temporal_down=temporal))
    up = _randomize(CausalHybridUpsample3d(4, spatial_up=spatial, temporal_up=temporal), seed=1)
    x = _video((2, 4, 5, 6, 8))  # 1 + 2k frames
    y = down(x)
    assert y.shape == (2, 4, 3 if temporal else 5, 3 if spatial else 6, 4 if spatial else 8)
    torch.testing.assert_close(y, ref_downsample(x, down), rtol=1e-12, atol=1e-12)
    z = up(y)
    assert z.shape == x.shape
    torch.testing.assert_close(z, ref_upsample(y, up), rtol=1e-12, atol=1e-12)
    # down: conv1 halves space, conv2 time; up: conv1 doubles time, conv2 space; conv3 runs if any does.
    inert = {(True, True): [], (True, False): ["conv2"], (False, True): ["conv1"]}
    assert down.inert_convs() == inert.get((spatial, temporal), ["conv1", "conv2", "conv3"])
    assert up.inert_convs() == inert.get((temporal, spatial), ["conv1", "conv2", "conv3"])
    if not (spatial or temporal):
        assert down(x) is x and up(x) is x
    # A single latent frame stays single through the temporal upsampler.
    one = _video((1, 4, 1, 3, 4))
    torch.testing.assert_close(up(one), ref_upsample(one, up), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [CausalAttnBlock, CausalTemporalAttnBlock])
def test_attention_blocks(block):
    m = _randomize(block(6))
    x = _video((2, 6, 4, 3, 5))
    ref = ref_attention(x, m, temporal=block is CausalTemporalAttnBlock)
    torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)


def test_2d_blocks():
    x = _video((2, 8, 6, 4))
    blk = _randomize(ResnetBlock(8, 16, num_groups=4)).eval()
    h = F.conv2d(
        F.silu(F.group_norm(x, 4, blk.norm1.weight, blk.norm1.bias, 1e-6)), *blk.conv1.parameters(), padding=1
    )
    h = F.conv2d(
        F.silu(F.group_norm(h, 4, blk.norm2.weight, blk.norm2.bias, 1e-6)), *blk.conv2.parameters(), padding=1
    )
    torch.testing.assert_close(
        blk(x), F.conv2d(x, *blk.nin_shortcut.parameters()) + h, rtol=1e-12, atol=1e-12
    )

    att = _randomize(AttnBlock(8, num_groups=4))
    h = F.group_norm(x, 4, att.norm.weight, att.norm.bias, 1e-6)
    q, k, v = (F.conv2d(h, *p.parameters()).flatten(2) for p in (att.q, att.k, att.v))  # (b, c, hw)
    weights = (q.transpose(1, 2) @ k / 8**0.5).softmax(-1)  # (b, hw, hw)
    out = (v @ weights.transpose(1, 2)).reshape(x.shape)
    torch.testing.assert_close(att(x), x + F.conv2d(out, *att.proj_out.parameters()), rtol=1e-12, atol=1e-12)


def test_decoder_compiles_and_matches_eager():
    """torch.compile of the causal decoder: the upsampler's repeat-and-drop followed by a causal pad
    once tripped inductor (a replicate F.pad); the pad is now a concatenation."""
    torch.manual_seed(0)
    model = build_tokenizer("tiny-cv8x8x8").eval()
    latents = torch.randn(1, 16, 2, 4, 4)
    with torch.no_grad():
        expected = model.decode(latents)
        compiled = torch.compile(model.decoder, dynamic=False)(model.post_quant_conv(latents))
    torch.testing.assert_close(compiled, expected, rtol=1e-4, atol=1e-4)
