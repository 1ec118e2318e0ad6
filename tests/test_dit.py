"""The Cosmos-1.0 DiT: exactness against an independent transcription of Cosmos's forward, parameter
counts, checkpoint loading, fast ops against the reference ops, gradients, and bad input."""

import copy
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import rel_error, triton_device_params
from einops import rearrange

from cosmos_kernels.models import (
    DIT_CONFIGS,
    build_dit,
    dit_config,
    load_cosmos_state_dict,
)
from cosmos_kernels.nn.dit_layers import Timesteps


def randomized(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Every weight random: Cosmos's init zeroes the modulation's last Linear, which would make each
    block the identity and hide errors in it."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
        for name, p in model.named_parameters():
            if name.endswith(("to_q.1.weight", "to_k.1.weight", "affline_norm.weight")):
                p.add_(1.0)
    return model


def inputs(config, batch=2, frames=3, height=6, width=10, text=7, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.latent_channels, frames, height, width, generator=gen, dtype=dtype)
    timesteps = torch.randn(batch, generator=gen, dtype=dtype)
    context = torch.randn(batch, text, config.crossattn_emb_channels, generator=gen, dtype=dtype)
    return x, timesteps, context


# ---------------------------------------------------------------------------------------------
# Cosmos's forward, transcribed from cosmos-predict1 (general_dit.py, blocks.py, attention.py,
# position_embedding.py; see docs/COSMOS.md) in its own layout: sequence-first "(t h w) b d" tokens,
# the RoPE angles over the full head dim as [t | h | w] twice, plain LayerNorm and softmax.
# ---------------------------------------------------------------------------------------------


def _rms(x, weight=None, eps=1e-6):
    out = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return out if weight is None else out * weight


def _cosmos_rope_angles(config, t, h, w, fps):
    head_dim = config.head_dim
    dim_h = head_dim // 6 * 2
    dim_t = head_dim - 2 * dim_h

    def freqs(dim, ratio):
        theta = 10000.0 * ratio ** (dim / (dim - 2))
        return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float32)[: dim // 2] / dim)

    seq = torch.arange(max(t, h, w), dtype=torch.float32)
    pos_t = seq[:t] if fps is None else seq[:t] / fps * 24
    half_t = torch.outer(pos_t, freqs(dim_t, config.rope_t_extrapolation_ratio))
    half_h = torch.outer(seq[:h], freqs(dim_h, config.rope_h_extrapolation_ratio))
    half_w = torch.outer(seq[:w], freqs(dim_h, config.rope_w_extrapolation_ratio))
    half = torch.cat(
        [
            half_t[:, None, None].expand(t, h, w, -1),
            half_h[None, :, None].expand(t, h, w, -1),
            half_w[None, None, :].expand(t, h, w, -1),
        ],
        dim=-1,
    ).reshape(t * h * w, -1)
    return torch.cat([half, half], dim=-1)  # (L, head_dim)


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def cosmos_forward(config, sd, x, timesteps, context, fps=None, padding_mask=None, cond_mask=None):
    """Cosmos's GeneralDIT / VideoExtendGeneralDIT forward on state dict ``sd`` (float64)."""
    D, heads, hd = config.model_channels, config.num_heads, config.head_dim
    p = config.patch_spatial
    B, _, T, H, W = x.shape
    if config.video_extend:
        x = torch.cat([x, cond_mask], dim=1)
    if padding_mask is None:
        padding_mask = torch.zeros(B, 1, H, W, dtype=x.dtype)
    padding_mask = F.interpolate(padding_mask, size=(H, W), mode="nearest")
    x = torch.cat([x, padding_mask.unsqueeze(1).repeat(1, 1, T, 1, 1)], dim=1)
    tokens = rearrange(x, "b c (t r) (h m) (w n) -> b t h w (c r m n)", r=1, m=p, n=p)
    tokens = tokens @ sd["x_embedder.proj.1.weight"].T
    _, t, h, w, _ = tokens.shape

    emb = (
        sd["extra_pos_embedder.pos_emb_t"][:t][None, :, None, None]
        + sd["extra_pos_embedder.pos_emb_h"][:h][None, None, :, None]
        + sd["extra_pos_embedder.pos_emb_w"][:w][None, None, None, :]
    )
    emb = emb / (1e-6 + emb.norm(dim=-1, keepdim=True) / math.sqrt(D))
    # Angles and their cos/sin in float32, as Cosmos (and TransformerEngine's fused RoPE) computes them.
    angles = _cosmos_rope_angles(config, t, h, w, fps)[:, None, None, :]  # L 1 1 D
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    half = D // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    arg = timesteps[:, None].float() * freqs[None]
    sinus = torch.cat([arg.cos(), arg.sin()], dim=-1).to(x.dtype)
    lora = F.silu(sinus @ sd["t_embedder.1.linear_1.weight"].T) @ sd["t_embedder.1.linear_2.weight"].T
    affine = _rms(sinus, sd["affline_norm.weight"])

    xs = rearrange(tokens, "b t h w d -> (t h w) b d")
    pos = rearrange(emb.expand(B, -1, -1, -1, -1), "b t h w d -> (t h w) b d")
    ctx = rearrange(context, "b m d -> m b d")

    def attention(prefix, q_in, kv_in, rope):
        def project(name, inp):
            return (inp @ sd[f"{prefix}.{name}.0.weight"].T).unflatten(-1, (heads, hd))  # L B n c

        q, k, v = project("to_q", q_in), project("to_k", kv_in), project("to_v", kv_in)
        q, k = _rms(q, sd[f"{prefix}.to_q.1.weight"]), _rms(k, sd[f"{prefix}.to_k.1.weight"])
        if rope:
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
        scores = torch.einsum("lbnc,mbnc->bnlm", q, k) / math.sqrt(hd)
        out = torch.einsum("bnlm,mbnc->lbnc", scores.softmax(-1), v).flatten(-2)
        return out @ sd[f"{prefix}.to_out.0.weight"].T

    for i in range(config.num_blocks):
        xs = xs + pos
        for j, kind in enumerate(config.block_config.split("-")):
            prefix = f"blocks.block{i}.blocks.{j}"
            mod = (F.silu(affine) @ sd[f"{prefix}.adaLN_modulation.1.weight"].T) @ sd[
                f"{prefix}.adaLN_modulation.2.weight"
            ].T + lora
            shift, scale, gate = mod.chunk(3, dim=1)
            normed = F.layer_norm(xs, (D,), eps=1e-6) * (1 + scale) + shift
            if kind == "FA":
                out = attention(f"{prefix}.block.attn", normed, normed, rope=True)
            elif kind == "CA":
                out = attention(f"{prefix}.block.attn", normed, ctx, rope=False)
            else:
                hidden = F.gelu(normed @ sd[f"{prefix}.block.layer1.weight"].T)
                out = hidden @ sd[f"{prefix}.block.layer2.weight"].T
            xs = xs + gate * out

    xs = rearrange(xs, "(t h w) b d -> (b t) (h w) d", t=t, h=h, w=w)
    mod = (F.silu(affine) @ sd["final_layer.adaLN_modulation.1.weight"].T) @ sd[
        "final_layer.adaLN_modulation.2.weight"
    ].T + lora[:, : 2 * D]
    shift, scale = (m.repeat_interleave(t, dim=0)[:, None] for m in mod.chunk(2, dim=1))
    out = (F.layer_norm(xs, (D,), eps=1e-6) * (1 + scale) + shift) @ sd["final_layer.linear.weight"].T
    return rearrange(
        out, "(B T) (H W) (p1 p2 t C) -> B C (T t) (H p1) (W p2)", B=B, T=t, H=h, W=w, p1=p, p2=p, t=1
    )


@pytest.mark.parametrize("name", ["tiny", "tiny-video2world"])
@pytest.mark.parametrize("fps", [None, 30.0])
def test_matches_cosmos_forward(name, fps):
    model = randomized(build_dit(name)).double()
    config = model.config
    x, timesteps, context = inputs(config)
    padding_mask = (torch.rand(2, 1, 48, 80, generator=torch.Generator().manual_seed(3)) > 0.7).double()
    cond_mask = None
    if config.video_extend:
        cond_mask = torch.zeros(2, 1, *x.shape[2:], dtype=x.dtype)
        cond_mask[:, :, :1] = 1
    out = model(
        x, timesteps, context, fps=fps, padding_mask=padding_mask, condition_video_input_mask=cond_mask
    )
    ref = cosmos_forward(config, model.state_dict(), x, timesteps, context, fps, padding_mask, cond_mask)
    assert out.shape == (x.shape[0], config.out_channels, *x.shape[2:])
    assert rel_error(out, ref) < 1e-12


def test_masks_and_fps_change_the_output():
    model = randomized(build_dit("tiny-video2world")).double()
    x, timesteps, context = inputs(model.config)
    base = model(x, timesteps, context, fps=24.0)
    ones = torch.ones(2, 1, 48, 80, dtype=x.dtype)
    cond = torch.zeros(2, 1, *x.shape[2:], dtype=x.dtype)
    cond[:, :, 0] = 1
    assert not torch.allclose(base, model(x, timesteps, context, fps=24.0, padding_mask=ones))
    assert not torch.allclose(base, model(x, timesteps, context, fps=24.0, condition_video_input_mask=cond))
    assert not torch.allclose(base, model(x, timesteps, context, fps=12.0))
    # One fps for the batch, as a tensor or a float.
    torch.testing.assert_close(model(x, timesteps, context, fps=torch.tensor([24.0, 24.0])), base)


def test_timestep_embedding_hand_values():
    emb = Timesteps(8)(torch.tensor([0.5], dtype=torch.float64))
    freqs = [1.0, 10000 ** (-1 / 4), 10000 ** (-2 / 4), 10000 ** (-3 / 4)]
    expected = [math.cos(0.5 * f) for f in freqs] + [math.sin(0.5 * f) for f in freqs]
    torch.testing.assert_close(emb[0], torch.tensor(expected, dtype=torch.float64), rtol=1e-6, atol=1e-7)


def test_patchify_unpatchify_round_trip():
    model = build_dit("tiny", in_channels=3, out_channels=3, concat_padding_mask=False)
    x = torch.randn(2, 3, 4, 6, 8)
    tokens = model.x_embedder.proj[0](x)  # (B, t, h, w, (c r m n))
    # The same patches with features reordered to the final layer's (p1, p2, t, C).
    features = rearrange(tokens, "b t h w (c r m n) -> b (t h w) (m n r c)", c=3, r=1, m=2, n=2)
    assert torch.equal(model.unpatchify(features, tokens.shape[1:4]), x)
    # One element by hand: token (t=1, h=2, w=3), feature (p1=1, p2=0, C=2).
    token = (1 * 3 + 2) * 4 + 3
    assert features[0, token, (1 * 2 + 0) * 3 + 2] == x[0, 2, 1, 2 * 2 + 1, 3 * 2 + 0]


def _count_cosmos_parameters(D, blocks, heads, video2world=False, lora_dim=256, text=1024):
    """Parameter count from the checkpoint key list of docs/COSMOS.md, independent of our modules."""
    head_dim = D // heads
    self_attn = 4 * D * D + 2 * head_dim
    cross_attn = 2 * D * D + 2 * text * D + 2 * head_dim
    mlp = 8 * D * D
    adaln = 3 * (lora_dim * D + lora_dim * 3 * D)
    per_block = self_attn + cross_attn + mlp + adaln
    in_features = (16 + 1 + int(video2world)) * 4
    rest = in_features * D + (D * D + 3 * D * D) + D + (128 + 120 + 120) * D
    final = lora_dim * D + lora_dim * 2 * D + 64 * D
    return blocks * per_block + rest + final


@pytest.mark.parametrize(
    ("name", "approx"),
    [("cosmos-7b", 7.2e9), ("cosmos-14b", 14.3e9), ("cosmos-7b-video2world", 7.2e9)],
)
def test_full_model_parameter_counts(name, approx):
    with torch.device("meta"):
        model = build_dit(name)
    count = sum(p.numel() for p in model.parameters())
    c = model.config
    assert count == _count_cosmos_parameters(c.model_channels, c.num_blocks, c.num_heads, c.video_extend)
    assert abs(count - approx) / approx < 0.01
    assert model.x_embedder.proj[1].weight.shape[1] == (72 if c.video_extend else 68)


def test_adaln_lora_saves_a_third_of_the_7b_parameters():
    with torch.device("meta"):
        lora = sum(p.numel() for p in build_dit("cosmos-7b").parameters())
        full = sum(p.numel() for p in build_dit("cosmos-7b", use_adaln_lora=False).parameters())
    saving = 1 - lora / full
    assert 0.33 < saving < 0.38, saving  # the paper reports 36 %


def _cosmos_named_state_dict(name):
    """A state dict as Cosmos's model.pt holds it, with keys and shapes written out from docs/COSMOS.md."""
    c = DIT_CONFIGS[name]
    D, r, hd, text = c.model_channels, c.adaln_lora_dim, c.head_dim, c.crossattn_emb_channels
    shapes = {
        "net.x_embedder.proj.1.weight": (D, (c.in_channels + 1) * 4),
        "net.t_embedder.1.linear_1.weight": (D, D),
        "net.t_embedder.1.linear_2.weight": (3 * D, D),
        "net.affline_norm.weight": (D,),
        "net.extra_pos_embedder.pos_emb_t": (c.max_frames, D),
        "net.extra_pos_embedder.pos_emb_h": (c.max_img_h // 2, D),
        "net.extra_pos_embedder.pos_emb_w": (c.max_img_w // 2, D),
        "net.final_layer.adaLN_modulation.1.weight": (r, D),
        "net.final_layer.adaLN_modulation.2.weight": (2 * D, r),
        "net.final_layer.linear.weight": (64, D),
    }
    for i in range(c.num_blocks):
        for j in range(3):
            prefix = f"net.blocks.block{i}.blocks.{j}"
            shapes[f"{prefix}.adaLN_modulation.1.weight"] = (r, D)
            shapes[f"{prefix}.adaLN_modulation.2.weight"] = (3 * D, r)
        for j, source in ((0, D), (1, text)):
            attn = f"net.blocks.block{i}.blocks.{j}.block.attn"
            shapes |= {
                f"{attn}.to_q.0.weight": (D, D),
                f"{attn}.to_q.1.weight": (hd,),
                f"{attn}.to_k.0.weight": (D, source),
                f"{attn}.to_k.1.weight": (hd,),
                f"{attn}.to_v.0.weight": (D, source),
                f"{attn}.to_out.0.weight": (D, D),
            }
        shapes[f"net.blocks.block{i}.blocks.2.block.layer1.weight"] = (4 * D, D)
        shapes[f"net.blocks.block{i}.blocks.2.block.layer2.weight"] = (D, 4 * D)
    gen = torch.Generator().manual_seed(5)
    sd = {key: torch.randn(shape, generator=gen) for key, shape in shapes.items()}
    sd["net.pos_embedder.seq"] = torch.arange(max(c.max_frames, c.max_img_h // 2), dtype=torch.float32)
    sd["net.blocks.block0.blocks.0.block.attn.to_q.1._extra_state"] = None
    sd |= {"logvar.0.freqs": torch.randn(128), "logvar.0.phases": torch.randn(128)}
    sd["logvar.1.weight"] = torch.randn(1, 128)
    return sd


@pytest.mark.parametrize("name", ["tiny", "tiny-video2world"])
def test_load_cosmos_state_dict(name):
    sd = _cosmos_named_state_dict(name)
    model = build_dit(name)
    loaded = load_cosmos_state_dict(model, sd)
    ours = model.state_dict()
    for key, value in sd.items():
        if key.startswith("net.") and key.removeprefix("net.") in ours:
            assert torch.equal(ours[key.removeprefix("net.")], value), key
    assert "net.pos_embedder.seq" in loaded.skipped_keys and "logvar.1.weight" in loaded.skipped_keys
    # Nested under "model", and onto a meta-device model, which takes the tensors as they are.
    with torch.device("meta"):
        meta_model = build_dit(name)
    load_cosmos_state_dict(meta_model, {"model": sd})
    assert not any(p.is_meta for p in meta_model.parameters())


def test_load_cosmos_state_dict_routes_logvar():
    sd = _cosmos_named_state_dict("tiny")
    logvar = torch.nn.Sequential(torch.nn.Module(), torch.nn.Linear(128, 1, bias=False))
    logvar[0].register_buffer("freqs", torch.zeros(128))
    logvar[0].register_buffer("phases", torch.zeros(128))
    loaded = load_cosmos_state_dict(build_dit("tiny"), sd, logvar=logvar)
    assert loaded.loaded_logvar and torch.equal(logvar[1].weight, sd["logvar.1.weight"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda sd: sd.pop("net.blocks.block1.blocks.2.block.layer2.weight"),
            "missing key 'net.blocks.block1",
        ),
        (
            lambda sd: sd.update({"net.blocks.block9.extra": torch.zeros(1)}),
            "unexpected key 'net.blocks.block9",
        ),
        (lambda sd: sd.update({"net.final_layer.linear.weight": torch.zeros(64, 65)}), "shape mismatch"),
        (lambda sd: sd.update({"conditioner.x": torch.zeros(1)}), "unexpected key 'conditioner.x'"),
        (lambda sd: sd.update({"net.affline_norm.weight": [1.0]}), "must be a tensor"),
    ],
)
def test_load_cosmos_state_dict_refuses_mismatches(edit, message):
    sd = _cosmos_named_state_dict("tiny")
    edit(sd)
    with pytest.raises((ValueError, TypeError), match=message):
        load_cosmos_state_dict(build_dit("tiny"), sd)


def test_load_refuses_another_config():
    with pytest.raises(ValueError, match="shape mismatch"):
        load_cosmos_state_dict(build_dit("tiny"), _cosmos_named_state_dict("tiny-video2world"))


def _forward_backward(model, x, timesteps, context, device, dtype, backend, monkeypatch):
    """The network's output and every parameter's gradient, in float64 on the CPU, for one backend."""
    monkeypatch.setenv("COSMOS_KERNELS_BACKEND", backend)
    model = copy.deepcopy(model).to(device, dtype)
    out = model(*(t.to(device, dtype) for t in (x, timesteps, context)), fps=24.0)
    out.float().square().mean().backward()
    grads = {n: p.grad.double().cpu() for n, p in model.named_parameters()}
    return out.detach().double().cpu(), grads


@pytest.mark.parametrize("device", triton_device_params())
def test_fast_ops_match_reference_ops(monkeypatch, device):
    """The whole network on the fast kernels against the torch reference ops, forward and gradients of
    every parameter, on a ragged token grid: in float32 under the Triton interpreter on CPU; on a GPU
    in bfloat16 (auto's kernels), whose error against float64 may be at most twice the reference ops'
    own bfloat16 error (flash-attention's test rule)."""
    model = randomized(build_dit("tiny"), std=0.1)
    x, timesteps, context = inputs(model.config, frames=3, height=6, width=10, text=5, dtype=torch.float32)
    run = functools.partial(_forward_backward, model, x, timesteps, context, monkeypatch=monkeypatch)
    if device == "cpu":
        ref_out, ref_grads = run("cpu", torch.float32, "torch")
        out, grads = run("cpu", torch.float32, "triton")
        assert rel_error(out, ref_out) < 1e-4
        for name, grad in grads.items():
            assert rel_error(grad, ref_grads[name]) < 1e-3, name
        return
    exact_out, exact_grads = run("cpu", torch.float64, "torch")
    ref_out, ref_grads = run("cuda", torch.bfloat16, "torch")
    out, grads = run("cuda", torch.bfloat16, "auto")
    assert rel_error(out, exact_out) <= 2 * rel_error(ref_out, exact_out) + 1e-3
    for name, grad in grads.items():
        allowed = 2 * rel_error(ref_grads[name], exact_grads[name]) + 1e-3
        assert rel_error(grad, exact_grads[name]) <= allowed, name


def test_gradients_reach_every_parameter():
    model = randomized(build_dit("tiny-video2world"), std=0.1)
    x, timesteps, context = inputs(model.config, dtype=torch.float32)
    cond = torch.zeros(2, 1, *x.shape[2:])
    cond[:, :, 0] = 1
    model(x, timesteps, context, fps=24.0, condition_video_input_mask=cond).square().mean().backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_bfloat16_autocast_runs():
    model = randomized(build_dit("tiny"), std=0.1)
    x, timesteps, context = inputs(model.config, dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, timesteps, context, fps=24.0)
    assert torch.isfinite(out).all()
    assert rel_error(out.float(), model(x, timesteps, context, fps=24.0)) < 0.1


def test_build_dit_configs_and_overrides():
    assert set(DIT_CONFIGS) >= {
        "tiny",
        "cosmos-7b",
        "cosmos-14b",
        "cosmos-7b-video2world",
        "cosmos-14b-video2world",
    }
    c7, c14 = dit_config("cosmos-7b"), dit_config("cosmos-14b")
    assert (c7.model_channels, c7.num_blocks, c7.num_heads) == (4096, 28, 32)
    assert (c14.model_channels, c14.num_blocks, c14.num_heads) == (5120, 36, 40)
    assert (c7.rope_h_extrapolation_ratio, c7.rope_w_extrapolation_ratio, c7.rope_t_extrapolation_ratio) == (
        1.0,
        1.0,
        2.0,
    )
    assert (c14.rope_h_extrapolation_ratio, c14.rope_t_extrapolation_ratio) == (2.0, 2.0)
    with torch.device("meta"):
        model = build_dit("cosmos-7b", num_blocks=2, max_frames=64)
    assert len(model.blocks) == 2 and model.extra_pos_embedder.pos_emb_t.shape == (64, 4096)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: build_dit("cosmos-3b"), ValueError, "unknown DiT config 'cosmos-3b'"),
        (lambda: build_dit("tiny", model_chanels=8), TypeError, "model_chanels"),
        (lambda: build_dit("tiny", num_heads=3), ValueError, "divisible by num_heads"),
        (lambda: build_dit("tiny", block_config="FA-XX"), ValueError, "unknown sub-block"),
        (lambda: build_dit("tiny", num_blocks=0), ValueError, "num_blocks must be an int >= 1"),
    ],
)
def test_bad_config(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.zeros(2, 16, 3, 5, 10)}, "H = 5 must be divisible by the patch size 2"),
        ({"x": torch.zeros(2, 15, 3, 6, 10)}, "x must have 16 channels"),
        ({"x": torch.zeros(2, 16, 17, 6, 10)}, "T = 17 exceeds"),
        ({"context": torch.zeros(2, 7, 512)}, r"crossattn_emb must be \(B=2, L, 1024\)"),
        ({"timesteps": torch.zeros(3)}, r"timesteps must be \(B,\)"),
        ({"fps": torch.tensor([24.0, 30.0])}, "fps must be the same"),
        ({"padding_mask": torch.zeros(2, 48, 80)}, "padding_mask must be"),
        ({"condition_video_input_mask": torch.zeros(2, 1, 3, 6, 10)}, "for Video2World models"),
    ],
)
def test_bad_input(change, message):
    model = build_dit("tiny")
    x, timesteps, context = inputs(model.config, dtype=torch.float32)
    args = {"x": x, "timesteps": timesteps, "context": context} | change
    kwargs = {k: v for k, v in args.items() if k not in ("x", "timesteps", "context")}
    with pytest.raises(ValueError, match=message):
        model(args["x"], args["timesteps"], args["context"], **kwargs)
