"""The multi-view DiT, tokenizer wrappers and pipelines: exactness against a transcription of Cosmos's
multi-view forward, the pieces it changes (channel layout, view embedding, per-view RoPE and sin-cos
embedding, per-view cross-attention), Cosmos's key names, the 7B parameter count, the pipelines end
to end on tiny models, the physics views and their consistency measure, and bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import rel_error
from einops import rearrange
from test_dit import _cosmos_named_state_dict, _cosmos_rope_angles, _rms, _rotate_half, randomized

from cosmos_kernels import ops
from cosmos_kernels.data.physics_views import (
    VIEWS,
    physics_multiview_clip,
    to_front,
    view_consistency,
    view_video,
)
from cosmos_kernels.diffusion import video2world_condition
from cosmos_kernels.models import (
    DIT_CONFIGS,
    MultiviewGeneralDIT,
    build_dit,
    build_tokenizer,
    dit_config,
    load_cosmos_state_dict,
)
from cosmos_kernels.nn.dit_layers import DITBuildingBlock
from cosmos_kernels.pipelines import (
    HashTextEncoder,
    MultiviewText2WorldPipeline,
    MultiviewVideo2WorldPipeline,
    SamplingOptions,
    decode_views,
    encode_views,
)

V, T, H, W, TEXT = 3, 2, 4, 6, 5  # tiny-multiview: 3 views of 2 latent frames of 4x6, 5 text tokens each


def mv_inputs(config, batch=2, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, config.latent_channels, V * T, H, W, generator=gen, dtype=dtype)
    timesteps = torch.randn(batch, generator=gen, dtype=dtype)
    context = torch.randn(batch, V * TEXT, config.crossattn_emb_channels, generator=gen, dtype=dtype)
    return x, timesteps, context


# ---------------------------------------------------------------------------------------------
# Cosmos's multi-view forward, transcribed from cosmos-predict1 (networks/general_dit_multiview.py
# prepare_embedded_sequence, module/position_embedding.py MultiviewVideoRopePosition3DEmb and
# MultiviewSinCosPosEmbAxis, module/blocks.py VideoAttn with n_views) in its own layout:
# sequence-first tokens, (v b) folding of the cross-attention batch, numpy sin-cos tables.
# ---------------------------------------------------------------------------------------------


def _np_sincos(dim, length, ratio=1.0):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    out = np.einsum("m,d->md", np.arange(length) * 1.0 / ratio, omega)
    return torch.from_numpy(np.concatenate([np.sin(out), np.cos(out)], axis=1)).float()


def cosmos_multiview_forward(config, sd, x, timesteps, context, fps, padding_mask, cond_mask, frame_repeat):
    D, heads, hd, views = config.model_channels, config.num_heads, config.head_dim, config.n_views
    B, _, VT, Hx, Wx = x.shape
    t_view = VT // views
    if config.video_extend:  # MultiviewVideoExtendGeneralDIT.forward
        x = torch.cat([x, cond_mask], dim=1)
    padding_mask = F.interpolate(padding_mask, size=(Hx, Wx), mode="nearest")
    x = torch.cat([x, padding_mask.unsqueeze(1).repeat(1, 1, VT, 1, 1)], dim=1)
    view_embedding = rearrange(sd["view_embeddings.weight"][torch.arange(views)], "V D -> D V")
    view_embedding = view_embedding[None, :, :, None, None, None]
    repeat = (frame_repeat / 10.0).unsqueeze(-1) @ sd["repeat_frame_embedding.weight"].T
    repeat = repeat + sd["repeat_frame_embedding.bias"]
    view_embedding = view_embedding + rearrange(repeat, "B V D -> B D V")[..., None, None, None]
    x = rearrange(x, "B C (V T) H W -> B C V T H W", V=views)
    view_embedding = view_embedding.expand(B, -1, views, t_view, Hx, Wx)
    x = rearrange(torch.cat([x, view_embedding], dim=1), "B C V T H W -> B C (V T) H W")
    p = config.patch_spatial
    tokens = rearrange(x, "b c (t r) (h m) (w n) -> b t h w (c r m n)", r=1, m=p, n=p)
    tokens = tokens @ sd["x_embedder.proj.1.weight"].T
    _, t, h, w, _ = tokens.shape

    dim_h = D // 6 * 2
    dim_t = D - 2 * dim_h
    emb_t, emb_h, emb_w = _np_sincos(dim_t, t_view), _np_sincos(dim_h, h), _np_sincos(dim_h, w)
    one_view = torch.cat(
        [
            emb_t[:, None, None].expand(t_view, h, w, -1),
            emb_h[None, :, None].expand(t_view, h, w, -1),
            emb_w[None, None, :].expand(t_view, h, w, -1),
        ],
        dim=-1,
    )
    pos = torch.cat([one_view] * views, dim=0).to(x.dtype)  # (V T) h w D
    angles = torch.cat([_cosmos_rope_angles(config, t_view, h, w, fps)] * views)[:, None, None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)

    half = D // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    arg = timesteps[:, None].float() * freqs[None]
    sinus = torch.cat([arg.cos(), arg.sin()], dim=-1).to(x.dtype)
    lora = F.silu(sinus @ sd["t_embedder.1.linear_1.weight"].T) @ sd["t_embedder.1.linear_2.weight"].T
    affine = _rms(sinus, sd["affline_norm.weight"])

    xs = rearrange(tokens, "b t h w d -> (t h w) b d")
    pos = rearrange(pos, "t h w d -> (t h w) 1 d")
    ctx = rearrange(context, "b m d -> m b d")

    def attention(prefix, q_in, kv_in, rope):
        def project(name, inp):
            return (inp @ sd[f"{prefix}.{name}.0.weight"].T).unflatten(-1, (heads, hd))

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
                # VideoAttn with n_views: "(v t) h w b d -> t h w (v b) d", "(v m) b d -> m (v b) d".
                q_in = rearrange(normed, "(v l) b d -> l (v b) d", v=views)
                kv_in = rearrange(ctx, "(v m) b d -> m (v b) d", v=views)
                out = attention(f"{prefix}.block.attn", q_in, kv_in, rope=False)
                out = rearrange(out, "l (v b) d -> (v l) b d", v=views)
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


@pytest.mark.parametrize("name", ["tiny-multiview", "tiny-multiview-video2world"])
@pytest.mark.parametrize("fps", [None, 30.0])
def test_matches_cosmos_multiview_forward(name, fps):
    model = randomized(build_dit(name)).double()
    config = model.config
    x, timesteps, context = mv_inputs(config)
    gen = torch.Generator().manual_seed(3)
    padding_mask = (torch.rand(2, 1, 32, 48, generator=gen) > 0.7).double()
    frame_repeat = torch.tensor([[0.0, 0.0, 10.0], [0.0, 5.0, 10.0]], dtype=torch.float64)
    cond_mask = None
    if config.video_extend:
        cond_mask = torch.zeros(2, 1, V * T, H, W, dtype=x.dtype)
        cond_mask[:, :, ::T] = 1  # the first latent frame of each view
    out = model(
        x,
        timesteps,
        context,
        fps=fps,
        padding_mask=padding_mask,
        condition_video_input_mask=cond_mask,
        frame_repeat=frame_repeat,
    )
    ref = cosmos_multiview_forward(
        config, model.state_dict(), x, timesteps, context, fps, padding_mask, cond_mask, frame_repeat
    )
    assert out.shape == (2, 16, V * T, H, W)
    assert rel_error(out, ref) < 1e-12


def test_input_channel_layout():
    """[x | padding mask | view] (23 for Cosmos's 6 views), with V2W's condition mask after x (24)."""
    for name, layout in (("cosmos-7b-multiview", 23), ("cosmos-7b-multiview-video2world", 24)):
        with torch.device("meta"):
            model = build_dit(name)
        assert model.config.embed_channels == layout
        assert model.x_embedder.proj[1].weight.shape == (4096, layout * 4)
    model = randomized(build_dit("tiny-multiview-video2world")).double()
    x, timesteps, context = mv_inputs(model.config)
    cond = torch.full((2, 1, V * T, H, W), 0.25, dtype=x.dtype)
    padding = torch.full((2, 1, 32, 48), 0.5, dtype=x.dtype)
    frame_repeat = torch.tensor([[0.0, 10.0, 20.0]] * 2, dtype=x.dtype)
    seen = {}
    model.x_embedder.proj[0].register_forward_hook(lambda m, args, out: seen.update(inputs=args[0]))
    masks = {"padding_mask": padding, "condition_video_input_mask": cond}
    model(x, timesteps, context, frame_repeat=frame_repeat, **masks)
    inputs = seen["inputs"]
    assert inputs.shape == (2, 16 + 1 + 1 + 3, V * T, H, W)
    assert torch.equal(inputs[:, :16], x)
    assert (inputs[:, 16] == 0.25).all() and (inputs[:, 17] == 0.5).all()
    # View v's channels: embedding row v + Linear(1, 3)(frame_repeat / 10), constant over its frames.
    weight, bias = model.repeat_frame_embedding.weight[:, 0], model.repeat_frame_embedding.bias
    for v, repeat in enumerate((0.0, 10.0, 20.0)):
        expected = model.view_embeddings.weight[v] + weight * repeat / 10 + bias
        block = inputs[:, 18:, v * T : (v + 1) * T]
        torch.testing.assert_close(block, expected.view(1, 3, 1, 1, 1).expand_as(block))


def test_positions_restart_in_every_view():
    model = build_dit("tiny-multiview")
    c = model.config
    cos, sin, pos = model._position_tables((V * T, 2, 3), 24.0, torch.device("cpu"))
    one_cos, one_sin = ops.rope3d_cos_sin(T, 2, 3, c.head_dim, t_extrapolation=c.rope_t_extrapolation_ratio)
    per_view = T * 2 * 3
    for v in range(V):
        rows = slice(v * per_view, (v + 1) * per_view)
        assert torch.equal(cos[rows], one_cos) and torch.equal(sin[rows], one_sin)
        assert torch.equal(pos[rows], pos[:per_view])
    # The sin-cos embedding: [t | h | w] parts of 24, 20, 20 dims for D = 64, [sin | cos] each.
    assert pos.shape == (V * per_view, 64)
    t1h1w1 = (1 * 2 + 1) * 3 + 1  # token (t=1, h=1, w=1) of a 2x3 grid
    assert torch.allclose(pos[t1h1w1, :12], torch.sin(1.0 / 10000 ** (torch.arange(12) / 12.0)))
    assert torch.allclose(pos[t1h1w1, 24:34], torch.sin(1.0 / 10000 ** (torch.arange(10) / 10.0)))
    assert not any(k.startswith("extra_pos_embedder") for k in model.state_dict())


def test_per_view_cross_attention_is_one_call_and_equals_a_loop():
    block = randomized(DITBuildingBlock("ca", 64, 1024, 2, 4.0, 16, n_views=V)).double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, V * 7, 64, generator=gen, dtype=torch.float64)
    context = torch.randn(2, V * TEXT, 1024, generator=gen, dtype=torch.float64)
    calls = []
    hook = block.block.attn.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape))
    out = block(x, context, None, None, None, ops.attention)
    hook.remove()
    # One Attention call (one ops.attention) on the views folded into the batch: (B*V, S, D).
    assert calls == [torch.Size([2 * V, 7, 64])]
    for v in range(V):
        alone = block.block.attn(x[:, v * 7 : (v + 1) * 7], context[:, v * TEXT : (v + 1) * TEXT])
        torch.testing.assert_close(out[:, v * 7 : (v + 1) * 7], alone, rtol=1e-12, atol=1e-12)
    # Each view sees its own prompt only: changing view 2's prompt leaves views 0 and 1 alone.
    changed = context.clone()
    changed[:, 2 * TEXT :] += 1
    out2 = block(x, changed, None, None, None, ops.attention)
    assert torch.equal(out2[:, : 2 * 7], out[:, : 2 * 7]) and not torch.equal(out2[:, 14:], out[:, 14:])


def _cosmos_multiview_state_dict(name):
    """The single-view key list of docs/COSMOS.md with the multi-view changes: 23 (24) input channels,
    no extra_pos_embedder tables (sin-cos buffers), view and frame-repeat embeddings."""
    c = DIT_CONFIGS[name]
    base = "tiny-video2world" if c.video_extend else "tiny"
    sd = {k: v for k, v in _cosmos_named_state_dict(base).items() if "extra_pos_embedder" not in k}
    gen = torch.Generator().manual_seed(7)
    sd["net.x_embedder.proj.1.weight"] = torch.randn(c.model_channels, c.embed_channels * 4, generator=gen)
    sd["net.view_embeddings.weight"] = torch.randn(c.n_views, c.view_condition_dim, generator=gen)
    sd["net.repeat_frame_embedding.weight"] = torch.randn(c.view_condition_dim, 1, generator=gen)
    sd["net.repeat_frame_embedding.bias"] = torch.randn(c.view_condition_dim, generator=gen)
    return sd


@pytest.mark.parametrize("name", ["tiny-multiview", "tiny-multiview-video2world"])
def test_cosmos_state_dict_round_trip(name):
    sd = _cosmos_multiview_state_dict(name)
    model = build_dit(name)
    load_cosmos_state_dict(model, sd)
    ours = model.state_dict()
    weights = {k for k in sd if k.startswith("net.") and not k.endswith("_extra_state")}
    assert {f"net.{k}" for k in ours} == weights - {"net.pos_embedder.seq"}
    for key, value in ours.items():
        assert torch.equal(value, sd[f"net.{key}"]), key
    again = build_dit(name)
    load_cosmos_state_dict(again, {f"net.{k}": v for k, v in ours.items()})
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in ours.items())
    with torch.device("meta"):
        meta = build_dit(name)
    load_cosmos_state_dict(meta, sd)
    assert not any(p.is_meta for p in meta.parameters())


def _count_multiview_parameters(c):
    """From the config alone, as Cosmos's modules hold them (no learnable position tables)."""
    D, r, hd, text = c.model_channels, c.adaln_lora_dim, c.head_dim, c.crossattn_emb_channels
    adaln = 3 * (r * D + r * 3 * D)
    per_block = (4 * D * D + 2 * hd) + (2 * D * D + 2 * text * D + 2 * hd) + 8 * D * D + adaln
    in_features = (16 + int(c.video_extend) + 1 + c.view_condition_dim) * 4
    rest = in_features * D + 4 * D * D + D + r * D + r * 2 * D + 64 * D
    views = c.n_views * c.view_condition_dim + 2 * c.view_condition_dim
    return c.num_blocks * per_block + rest + views


@pytest.mark.parametrize("name", ["cosmos-7b-multiview", "cosmos-7b-multiview-video2world"])
def test_7b_builds_on_meta_with_the_derived_parameter_count(name):
    with torch.device("meta"):
        model = build_dit(name)
        single = build_dit("cosmos-7b-video2world" if model.config.video_extend else "cosmos-7b")
    assert isinstance(model, MultiviewGeneralDIT)
    c = model.config
    assert (c.n_views, c.view_condition_dim, c.add_repeat_frame_embedding) == (6, 6, True)
    count = sum(p.numel() for p in model.parameters())
    assert count == _count_multiview_parameters(c)
    # Against the single-view 7B: minus the learnable tables, plus 6 input channels and 48 weights.
    single_count = sum(p.numel() for p in single.parameters())
    assert count == single_count - (128 + 120 + 120) * 4096 + 6 * 4 * 4096 + 36 + 12
    assert abs(count - 7.23e9) / 7.23e9 < 0.01


def test_tokenizer_codes_each_view_alone():
    tokenizer = build_tokenizer("tiny-cv8x8x8").eval()
    video = torch.rand(1, 3, V * 9, 8, 8) * 2 - 1
    with torch.no_grad():
        latents = encode_views(tokenizer, video, V)
        loop = torch.cat([tokenizer.encode(video[:, :, v * 9 : (v + 1) * 9]) for v in range(V)], dim=2)
        torch.testing.assert_close(latents, loop)
        decoded = decode_views(tokenizer, latents, V)
        loop = torch.cat([tokenizer.decode(latents[:, :, v * 2 : (v + 1) * 2]) for v in range(V)], dim=2)
    torch.testing.assert_close(decoded, loop)
    assert decoded.shape == video.shape


def _pipeline(kind):
    torch.manual_seed(0)
    net = build_dit(f"tiny-multiview{kind}", max_img_h=8, max_img_w=8).eval()
    return net, HashTextEncoder(max_length=6), build_tokenizer("tiny-cv8x8x8").eval()


def test_text2world_pipeline_end_to_end():
    net, text, tokenizer = _pipeline("")
    pipeline = MultiviewText2WorldPipeline(net, text, tokenizer)
    options = SamplingOptions(num_steps=2)
    sample = pipeline(["front", "left", "right"], num_frames=9, height=16, width=16, options=options)
    assert sample.latents.shape == (1, 16, V * 2, 2, 2) and sample.video.shape == (1, 3, V * 9, 16, 16)
    assert sample.prompts == ["front", "left", "right"]
    one = pipeline("a red ball", num_frames=1, height=16, width=16, options=options, frame_repeat=[0, 0, 10])
    assert one.prompts == ["a red ball"] * V and one.video.shape == (1, 3, V, 16, 16)


def test_video2world_pipeline_conditions_each_view():
    net, text, tokenizer = _pipeline("-video2world")
    pipeline = MultiviewVideo2WorldPipeline(net, text, tokenizer)
    given = torch.rand(1, 3, V, 16, 16) * 2 - 1  # one frame per view
    sample = pipeline("a ball", given, num_frames=9, options=SamplingOptions(num_steps=2), augment_sigma=0.0)
    with torch.no_grad():
        condition = encode_views(tokenizer, given, V)
    # The first latent frame of every view is the given one.
    torch.testing.assert_close(sample.latents[:, :, ::2], condition, rtol=0, atol=1e-5)
    assert sample.video.shape == (1, 3, V * 9, 16, 16)


def test_multiview_video_condition_pads_each_view():
    latent = torch.arange(2 * 1 * V * 2 * 1 * 1, dtype=torch.float32).view(2, 1, V * 2, 1, 1)
    condition = video2world_condition(latent, 4, num_condition_frames=1, views=V, augment_sigma=0.0)
    assert condition.latent.shape == (2, 1, V * 4, 1, 1)
    assert condition.condition_frames().tolist() == [True, False, False, False] * V
    assert torch.equal(condition.latent[:, :, ::4], latent[:, :, ::2])
    assert condition.input_mask()[0, 0, :, 0, 0].tolist() == [1.0, 0.0, 0.0, 0.0] * V


def test_physics_views_are_exact_maps_and_consistent():
    video, text, _ = physics_multiview_clip(5, 24, 32, seed=3)
    assert video.shape == (3, len(VIEWS) * 5, 24, 32) and isinstance(text, str)
    front = video[:, :5]
    for v, view in enumerate(VIEWS):
        assert torch.equal(view_video(video[:, v * 5 : (v + 1) * 5], view), front)
    assert to_front("back", 3.0, 4.0, 24, 32) == (29.0, 4.0)
    assert to_front("upside-down", 3.0, 4.0, 24, 32) == (29.0, 20.0)
    score = view_consistency(video)
    assert score.distance < 1e-9 and score.color_agreement == 1.0 and score.matched > 0
    # The back view replaced by an unmirrored copy of the front: the balls land in the wrong place.
    wrong = torch.cat([front, front, video[:, 10:]], dim=1)
    assert view_consistency(wrong).distance > 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": torch.zeros(2, 16, 5, H, W)}, "T = 5 must be a multiple of n_views = 3"),
        ({"context": torch.zeros(2, 7, 1024)}, "3 views' text tokens"),
        ({"frame_repeat": torch.zeros(2, 2)}, r"frame_repeat must be a \(B, n_views\) = \(2, 3\)"),
        ({"x": torch.zeros(2, 16, V * 17, H, W)}, "T per view = 17 exceeds"),
    ],
)
def test_network_bad_input(change, message):
    model = build_dit("tiny-multiview")
    x, timesteps, context = mv_inputs(model.config, dtype=torch.float32)
    args = {"x": x, "context": context} | change
    kwargs = {k: v for k, v in args.items() if k not in ("x", "context")}
    with pytest.raises(ValueError, match=message):
        model(args["x"], timesteps, args["context"], **kwargs)


def test_pipeline_bad_input():
    net, text, tokenizer = _pipeline("")
    t2w = MultiviewText2WorldPipeline(net, text, tokenizer)
    with pytest.raises(ValueError, match=r"one per view \(3 for this network\), got 2"):
        t2w(["a", "b"], num_frames=9, height=16, width=16)
    with pytest.raises(ValueError, match="frame_repeat must hold one count per view"):
        t2w("a", num_frames=9, height=16, width=16, frame_repeat=[0, 10])
    with pytest.raises(TypeError, match="MultiviewGeneralDIT"):
        MultiviewText2WorldPipeline(build_dit("tiny"), text, tokenizer)
    with pytest.raises(ValueError, match="prompt_upsampler: multi-view pipelines take the prompts as given"):
        MultiviewText2WorldPipeline(net, text, tokenizer, prompt_upsampler=str.upper)
    with pytest.raises(ValueError, match=r"e.g. build_dit\('tiny-multiview-video2world'\)"):
        MultiviewVideo2WorldPipeline(net, text, tokenizer)("a", torch.zeros(1, 3, V, 16, 16), num_frames=9)
    net, text, tokenizer = _pipeline("-video2world")
    v2w = MultiviewVideo2WorldPipeline(net, text, tokenizer)
    with pytest.raises(ValueError, match="not a multiple of the 3 views"):
        v2w("a", torch.zeros(1, 3, 4, 16, 16), num_frames=9)
    with pytest.raises(ValueError, match="not a multiple of the 3 views"):
        encode_views(tokenizer, torch.zeros(1, 3, 8, 16, 16), V)
    with pytest.raises(ValueError, match="must be fewer than"):
        v2w("a", torch.zeros(1, 3, V * 9, 16, 16), num_frames=9)
    with pytest.raises(ValueError, match="multiple of views = 3"):
        video2world_condition(torch.zeros(1, 16, 4, 2, 2), 3, views=V)


def test_multiview_configs():
    c = dit_config("cosmos-7b-multiview")
    assert (c.rope_t_extrapolation_ratio, c.extra_per_block_abs_pos_emb_type) == (2.0, "sincos")
    with pytest.raises(ValueError, match="must be one of"):
        dit_config("cosmos-7b-multiview", extra_per_block_abs_pos_emb_type="learnable")
    with pytest.raises(ValueError, match="n_views must be an int >= 1"):
        dit_config("tiny-multiview", n_views=0)


def test_generate_cli_points_multiview_models_to_their_pipelines(capsys):
    from cosmos_kernels.tools.cli import main

    assert main(["generate", "--model", "tiny-multiview", "--prompt", "a"]) != 0
    captured = capsys.readouterr()
    assert "MultiviewText2WorldPipeline" in captured.err + captured.out
