"""attention, qk_norm_rope and rope3d_cos_sin against the float64 reference and Cosmos's formulation."""

import pytest
import torch
import torch.nn.functional as F
from conftest import DTYPES, assert_close, backend_params
from einops import rearrange

from cosmos_kernels import BackendUnavailableError, nn, ops, reference

# (B, Sq, Sk, H, D, norms, rope, k_lengths). Ragged sequence lengths on purpose; D small where S is large.
CASES = [
    (2, 17, 17, 2, 16, "qk", True, None),
    (1, 200, 200, 2, 8, "qk", True, [150]),
    (2, 33, 7, 3, 16, "qk", False, [0, 5]),
    (1, 45, 512, 1, 8, "k", False, [300]),
    (2, 9, 9, 1, 32, "q", True, [9, 0]),
    (3, 5, 11, 2, 8, "", False, None),
]


def rand(gen, *shape, dtype=torch.float64, scale=1.0):
    return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).to(dtype)


def make_inputs(
    batch, seq_q, seq_k, heads, dim, norms, rope, lengths, dtype, seed=0, scale=1.0, device="cpu"
):
    """q, k, v as strided views (as out of a fused projection), norm weights, RoPE tables, lengths."""
    gen = torch.Generator().manual_seed(seed)
    q = rand(gen, batch, seq_q, heads, dim + 3, dtype=dtype, scale=scale)[..., :dim]
    k = rand(gen, batch, seq_k, heads, dim + 3, dtype=dtype, scale=scale)[..., :dim]
    v = rand(gen, batch, seq_k, heads, dim, dtype=dtype)
    kwargs = {}
    for name in norms:
        kwargs[f"{name}_norm_weight"] = (1 + rand(gen, dim, scale=0.3)).to(dtype)
    if rope:
        angles = torch.arange(seq_q, dtype=torch.float64)[:, None] * rand(gen, dim // 2).abs()
        kwargs["rope_cos"], kwargs["rope_sin"] = angles.cos().float(), angles.sin().float()
    if lengths is not None:
        kwargs["k_lengths"] = torch.tensor(lengths)
    return tuple(t.to(device) for t in (q, k, v)), {n: t.to(device) for n, t in kwargs.items()}


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def differentiable(kwargs):
    names = [n for n in ("q_norm_weight", "k_norm_weight") if n in kwargs]
    return names, {**kwargs, **dict(zip(names, leaves(*(kwargs[n] for n in names)), strict=True))}


def as_float64(kwargs):
    return {n: t.double() if t.is_floating_point() else t for n, t in kwargs.items()}


def check_lse(lse, lse_ref, dtype):
    assert lse.dtype == torch.float32 and lse.shape == lse_ref.shape
    empty = torch.isinf(lse_ref)
    assert (torch.isinf(lse) == empty).all() and (lse[empty] < 0).all(), "rows with no key must give -inf"
    assert_close(lse[~empty], lse_ref[~empty], dtype, "lse")


TORCH_BACKENDS = [p for p in backend_params() if p.values[1] == "torch"]
TRITON_BACKENDS = [p for p in backend_params() if p.values[1] == "triton"]
# The Triton kernels take head dims that are multiples of 16 in [32, 256] (64, 128 and 256 in Cosmos).
TRITON_CASES = [
    (2, 17, 17, 2, 64, "qk", True, None),
    (2, 33, 7, 2, 64, "qk", False, [0, 5]),
    (1, 45, 70, 1, 32, "k", False, [60]),
    (1, 33, 33, 1, 128, "q", True, [30]),
    (2, 20, 20, 2, 96, "", False, None),
]


def case_id(case):
    return "x".join(map(str, case[:5])) + f"-{case[5] or 'nonorm'}"


@pytest.mark.parametrize(("device", "backend"), TORCH_BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_attention_matches_reference(device, backend, case):
    check_against_reference(device, backend, case, DTYPES)


@pytest.mark.parametrize(("device", "backend"), TRITON_BACKENDS)
@pytest.mark.parametrize("case", TRITON_CASES, ids=case_id)
def test_triton_attention_matches_reference(device, backend, case):
    # The interpreter's tl.dot on bfloat16 multiplies raw bit patterns (docs/DESIGN.md): bfloat16 on GPUs.
    dtypes = DTYPES if device == "cuda" else [torch.float32, torch.float16]
    check_against_reference(device, backend, case, dtypes)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(
    "case",
    [(2, 130, 130, 2, 128, "qk", True, None), (1, 77, 40, 3, 64, "qk", False, None)],
    ids=["self", "cross"],
)
def test_auto_on_gpu_runs_sdpa_after_the_prologue_pass(case, monkeypatch):
    """auto in half precision: our prologue pass, then scaled_dot_product_attention, exact to bf16/fp16."""
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **kw: calls.append(1) or sdpa(*a, **kw))
    monkeypatch.delenv("COSMOS_KERNELS_BACKEND", raising=False)
    for dtype in (torch.float16, torch.bfloat16):
        (q, k, v), kwargs = make_inputs(*case, dtype, device="cuda")
        q, k, v = leaves(q, k, v)
        names, kwargs = differentiable(kwargs)
        out = ops.attention(q, k, v, **kwargs)
        q64, k64, v64 = leaves(q.double(), k.double(), v.double())
        names, kwargs64 = differentiable(as_float64(kwargs))
        ref = reference.attention(q64, k64, v64, **kwargs64)
        assert_close(out, ref, dtype, f"forward {dtype}")
        grad_out = torch.randn_like(ref).to(dtype)
        out.backward(grad_out)
        ref.backward(grad_out.double())
        pairs = [("q", q, q64), ("k", k, k64), ("v", v, v64)] + [(n, kwargs[n], kwargs64[n]) for n in names]
        for name, ours, theirs in pairs:
            assert_close(ours.grad, theirs.grad, dtype, f"grad {name} {dtype}")
    assert len(calls) == 2, "auto must hand the attention to SDPA in half precision"
    # Key lengths, an lse or a named backend keep our kernel.
    (q, k, v), kwargs = make_inputs(*case[:-1], [5] * case[0], torch.bfloat16, device="cuda")
    ops.attention(q, k, v, **kwargs)
    ops.attention(q, k, v, return_lse=True)
    ops.attention(q, k, v, backend="triton")
    assert len(calls) == 2


def check_against_reference(device, backend, case, dtypes):
    for dtype in dtypes:
        (q, k, v), kwargs = make_inputs(*case, dtype, device=device)
        q, k, v = leaves(q, k, v)
        names, kwargs = differentiable(kwargs)
        out, lse = ops.attention(q, k, v, **kwargs, return_lse=True, backend=backend)
        assert out.dtype == dtype and out.shape == q.shape

        q64, k64, v64 = leaves(q.double(), k.double(), v.double())
        names, kwargs64 = differentiable(as_float64(kwargs))
        ref, lse_ref = reference.attention(q64, k64, v64, **kwargs64, return_lse=True)
        assert_close(out, ref, dtype, f"forward {dtype}")
        check_lse(lse, lse_ref, dtype)
        if case[-1] is not None and 0 in case[-1]:
            assert (out[torch.tensor(case[-1], device=device) == 0] == 0).all(), "a row with no key: zeros"

        grad_out = torch.randn_like(ref).to(dtype)  # rounded, so both sides see the same gradient
        grad_lse = torch.randn_like(lse_ref).float()
        torch.autograd.backward((out, lse), (grad_out, grad_lse))
        torch.autograd.backward((ref, lse_ref), (grad_out.double(), grad_lse.double()))
        pairs = [("q", q, q64), ("k", k, k64), ("v", v, v64)]
        pairs += [(n, kwargs[n], kwargs64[n]) for n in names]
        for name, ours, theirs in pairs:
            assert ours.grad.dtype == dtype
            assert_close(ours.grad, theirs.grad, dtype, f"grad {name} {dtype}")


@pytest.mark.parametrize(("norms", "dtype"), [("qk", torch.float32), ("", torch.float64)])
def test_large_logits_are_finite_and_exact(norms, dtype):
    """q and k scaled by 100: scores reach ~1e4, where exp overflows even float64 unless shifted.

    With QK-norm the scale cancels and float32 is exact. Without it, merely rounding such scores to
    float32 moves them by ~1e-3, so exactness is checked in float64 and float32 only for finiteness.
    """
    (q, k, v), kwargs = make_inputs(2, 33, 45, 2, 16, norms, False, [45, 3], dtype, scale=100.0)
    if not norms:
        assert torch.isfinite(ops.attention(q.float(), k.float(), v.float(), **kwargs)).all()
    q, k, v = leaves(q, k, v)
    out = ops.attention(q, k, v, **kwargs)
    q64, k64, v64 = leaves(q.double(), k.double(), v.double())
    ref = reference.attention(q64, k64, v64, **as_float64(kwargs))
    assert_close(out, ref, dtype)
    grad_out = torch.randn_like(ref)
    out.backward(grad_out.to(dtype))
    ref.backward(grad_out)
    for name, ours, theirs in (("q", q, q64), ("k", k, k64), ("v", v, v64)):
        assert torch.isfinite(ours.grad).all(), name
        assert_close(ours.grad, theirs.grad, dtype, f"grad {name}")


@pytest.mark.parametrize(("device", "backend"), TRITON_BACKENDS)
def test_triton_large_logits_are_finite_and_exact(device, backend):
    """Scores of ~1e4 through the Triton kernels, full and partial key blocks and a 3-key row included:
    exact in float32 with QK-norm; without it, finite, forward and every gradient (a masked key must
    not turn exp(-lse) overflow into NaN)."""
    for norms in ("qk", ""):
        (q, k, v), kwargs = make_inputs(2, 33, 45, 2, 32, norms, False, [45, 3], torch.float32, scale=100.0)
        q, k, v = leaves(*(t.to(device) for t in (q, k, v)))
        kwargs = {n: t.to(device) for n, t in kwargs.items()}
        out = ops.attention(q, k, v, **kwargs, backend=backend)
        out.backward(torch.randn_like(out))
        for name, t in (("out", out), ("grad q", q.grad), ("grad k", k.grad), ("grad v", v.grad)):
            assert torch.isfinite(t).all(), f"{name} without QK-norm" if not norms else name
        if norms:
            q64, k64, v64 = leaves(q.double(), k.double(), v.double())
            ref = reference.attention(q64, k64, v64, **as_float64(kwargs))
            assert_close(out, ref, torch.float32)


def test_gradcheck_float64():
    (q, k, v), kwargs = make_inputs(1, 4, 4, 2, 4, "qk", True, [3], torch.float64)
    qw, kw = kwargs.pop("q_norm_weight"), kwargs.pop("k_norm_weight")

    def fn(q, k, v, qw, kw):
        return ops.attention(q, k, v, q_norm_weight=qw, k_norm_weight=kw, **kwargs, return_lse=True)

    assert torch.autograd.gradcheck(fn, leaves(q, k, v, qw, kw))
    cos, sin = kwargs["rope_cos"].double(), kwargs["rope_sin"].double()
    assert torch.autograd.gradcheck(
        lambda q, k, qw, kw: ops.qk_norm_rope(q, k, qw, kw, cos, sin), leaves(q, k, qw, kw)
    )


@pytest.mark.parametrize(("device", "backend"), TORCH_BACKENDS + TRITON_BACKENDS)
@pytest.mark.parametrize(("seq", "dim"), [(17, 32), (37, 48), (70, 128)])
def test_qk_norm_rope_matches_reference(device, backend, seq, dim):
    (q, k, _), kwargs = make_inputs(2, seq, seq, 3, dim, "qk", True, None, torch.float64)
    weights = kwargs["q_norm_weight"], kwargs["k_norm_weight"]
    tables = tuple(t.to(device) for t in (kwargs["rope_cos"], kwargs["rope_sin"]))
    dtypes = DTYPES if backend == "triton" else [*DTYPES, torch.float64]
    for dtype in dtypes:
        inputs = leaves(q.to(device, dtype), k.to(device, dtype), *(w.to(device, dtype) for w in weights))
        outs = ops.qk_norm_rope(*inputs[:2], *inputs[2:], *tables, backend=backend)
        inputs64 = leaves(*(t.double() for t in inputs))
        refs = reference.qk_norm_rope(*inputs64[:2], *inputs64[2:], *(t.double() for t in tables))
        grads = [torch.randn_like(r).to(device, dtype) for r in refs]
        torch.autograd.backward(outs, grads)
        torch.autograd.backward(refs, [g.double() for g in grads])
        for out, ref in zip(outs, refs, strict=True):
            assert out.dtype == dtype
            assert_close(out, ref, dtype, f"forward {dtype}")
        for name, ours, theirs in zip(
            ("q", "k", "q_norm_weight", "k_norm_weight"), inputs, inputs64, strict=True
        ):
            assert_close(ours.grad, theirs.grad, dtype, f"grad {name} {dtype}")


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rope_scores_depend_only_on_relative_position(axis):
    """One query vector and one key vector at every position of a 1-D grid: the scores are Toeplitz."""
    seq = 12
    grid = [1, 1, 1]
    grid[axis] = seq
    cos, sin = ops.rope3d_cos_sin(*grid, 64, fps=30.0, t_extrapolation=2.0)
    cos, sin = cos.double(), sin.double()
    gen = torch.Generator().manual_seed(0)
    q = rand(gen, 1, 1, 1, 64).expand(1, seq, 1, 64)
    k = rand(gen, 1, 1, 1, 64).expand(1, seq, 1, 64)
    ones = torch.ones(64, dtype=torch.float64)
    q_rot, k_rot = ops.qk_norm_rope(q, k, ones, ones, cos, sin)
    scores = torch.einsum("qd,kd->qk", q_rot[0, :, 0], k_rot[0, :, 0])
    for offset in range(-seq + 1, seq):
        diagonal = scores.diagonal(offset)
        # Exact up to the float32 rounding of the tables' angles.
        torch.testing.assert_close(diagonal, diagonal[:1].expand_as(diagonal), rtol=0, atol=1e-5)
    assert not torch.allclose(scores[0, 0], scores[0, 1]), "RoPE must rotate along this axis"


# Cosmos-1.0's VideoRopePosition3DEmb, head_dim 128 and the 7B's extrapolation (t 2, h 1, w 1):
# t part 44 dims, theta_t = 10000 * 2 ** (44 / 42) = 20671.155660140554; h and w parts 42, theta 10000.
FREQ_T1 = 0.6365713030028959  # theta_t ** (-2 / 44)
FREQ_HW1 = 0.6449466771037624  # 10000 ** (-2 / 42)


def cosmos_angles(t, h, w, head_dim, ratios, fps, base_fps=24.0):
    """Cosmos's construction in float64: per-token angles cat([t, h, w] * 2) over the full head dim."""
    dim_h = head_dim // 6 * 2
    dim_t = head_dim - 2 * dim_h
    freqs = []
    for dim, ratio in zip((dim_t, dim_h, dim_h), ratios, strict=True):
        theta = 10000.0 * ratio ** (dim / (dim - 2))
        freqs.append(1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    pos_t = torch.arange(t, dtype=torch.float64) * (base_fps / fps if fps else 1.0)
    half_t = torch.outer(pos_t, freqs[0])[:, None, None, :].expand(t, h, w, -1)
    half_h = torch.outer(torch.arange(h, dtype=torch.float64), freqs[1])[None, :, None, :].expand(t, h, w, -1)
    half_w = torch.outer(torch.arange(w, dtype=torch.float64), freqs[2])[None, None, :, :].expand(t, h, w, -1)
    return torch.cat([half_t, half_h, half_w] * 2, dim=-1).reshape(t * h * w, head_dim)


def test_rope3d_cos_sin_pins_cosmos_facts():
    t, h, w = 3, 4, 5
    cos, sin = ops.rope3d_cos_sin(t, h, w, 128, t_extrapolation=2.0)
    assert cos.shape == sin.shape == (t * h * w, 64) and cos.dtype == sin.dtype == torch.float32
    # The token at (t, h, w) = (1, 2, 3) sits at 1 * 20 + 2 * 5 + 3 = 33 in (t, h, w) row-major order.
    angles = torch.atan2(sin[33].double(), cos[33].double())
    # The first frequency of every axis is 1, so its angle is the position itself.
    first = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(angles[[0, 22, 43]], first, rtol=0, atol=1e-6)
    expected = torch.tensor([1 * FREQ_T1, 2 * FREQ_HW1, 3 * FREQ_HW1], dtype=torch.float64)
    torch.testing.assert_close(angles[[1, 23, 44]], expected, rtol=0, atol=1e-6)
    # The [t 22 | h 21 | w 21] split: one step along w changes only the last 21 angles, along h the
    # middle 21 (sin, not cos: cos of the lowest frequencies, ~1e-4, rounds to 1 in float32).
    step_w = sin[1] != sin[0]
    assert not step_w[:43].any() and step_w[43:].all()
    step_h = sin[w] != sin[0]
    assert not step_h[:22].any() and step_h[22:43].all() and not step_h[43:].any()
    # fps scales temporal positions by base_fps / fps: at fps 12, frame 1 sits at position 2.
    cos12, sin12 = ops.rope3d_cos_sin(t, h, w, 128, t_extrapolation=2.0, fps=12.0)
    torch.testing.assert_close(cos12[h * w], cos[2 * h * w])
    torch.testing.assert_close(sin12[h * w], sin[2 * h * w])


@pytest.mark.parametrize(
    ("grid", "head_dim", "ratios", "fps"),
    [
        ((3, 4, 5), 128, (2.0, 1.0, 1.0), 30.0),
        ((2, 3, 2), 64, (2.0, 2.0, 2.0), None),
        ((4, 2, 3), 14, (1.0,) * 3, 8.0),
    ],
)
def test_rope3d_cos_sin_matches_cosmos_construction(grid, head_dim, ratios, fps):
    cos, sin = ops.rope3d_cos_sin(
        *grid,
        head_dim,
        t_extrapolation=ratios[0],
        h_extrapolation=ratios[1],
        w_extrapolation=ratios[2],
        fps=fps,
    )
    angles = cosmos_angles(*grid, head_dim, ratios, fps)
    # Rotate-half reads the half table twice: cat(cos, cos) is cos of Cosmos's full-dim angles.
    torch.testing.assert_close(torch.cat([cos, cos], -1).double(), angles.cos(), rtol=0, atol=2e-5)
    torch.testing.assert_close(torch.cat([sin, sin], -1).double(), angles.sin(), rtol=0, atol=2e-5)


def test_rope3d_offsets_select_a_shard_of_the_full_grid():
    full = ops.rope3d_cos_sin(6, 4, 5, 64, fps=24.0)
    shard = ops.rope3d_cos_sin(2, 4, 5, 64, fps=24.0, offsets=(3, 0, 0))
    for whole, part in zip(full, shard, strict=True):
        torch.testing.assert_close(part, whole[3 * 20 : 5 * 20], rtol=0, atol=0)
    corner = ops.rope3d_cos_sin(1, 2, 2, 64, offsets=(0, 1, 3))
    for whole, part in zip(ops.rope3d_cos_sin(1, 3, 5, 64), corner, strict=True):
        torch.testing.assert_close(part, whole.view(3, 5, -1)[1:3, 3:5].reshape(4, -1), rtol=0, atol=0)


def test_opcheck_custom_ops():
    (q, k, v), kwargs = make_inputs(2, 5, 5, 2, 8, "qk", True, [5, 2], torch.float32)
    full = (kwargs["q_norm_weight"], kwargs["k_norm_weight"], kwargs["rope_cos"], kwargs["rope_sin"])
    norm_weights, tables = leaves(*full[:2]), full[2:]
    for optional in ((*norm_weights, *tables, kwargs["k_lengths"]), (None,) * 5):
        torch.library.opcheck(
            torch.ops.cosmos_kernels.attention.default, (*leaves(q, k, v), *optional, 1e-6, 0.3, "torch")
        )
    # The prologue op with every piece, and with the partial prologues of cross-attention (norms, no
    # RoPE) and of a norm on one side only (the other tensor passes through, copied).
    for pieces in (
        (*norm_weights, *tables),
        (*norm_weights, None, None),
        (None, norm_weights[1], None, None),
    ):
        args = (*leaves(q, k), *pieces, 1e-6, "torch")
        torch.library.opcheck(torch.ops.cosmos_kernels.qk_norm_rope.default, args)


def test_compile_fullgraph_matches_eager():
    (q, k, v), kwargs = make_inputs(2, 9, 9, 2, 16, "qk", True, [9, 4], torch.float32)

    def step(q, k, v, qw, kw):
        out, lse = ops.attention(q, k, v, q_norm_weight=qw, k_norm_weight=kw, **kwargs, return_lse=True)
        q_rot, _ = ops.qk_norm_rope(q, k, qw, kw, kwargs["rope_cos"], kwargs["rope_sin"])
        return out.square().sum() + lse.sum() + q_rot.sum()

    args = leaves(q, k, v, kwargs.pop("q_norm_weight"), kwargs.pop("k_norm_weight"))
    eager = step(*args)
    eager_grads = torch.autograd.grad(eager, args)
    compiled = torch.compile(step, fullgraph=True)(*args)
    compiled_grads = torch.autograd.grad(compiled, args)
    torch.testing.assert_close(compiled, eager)
    for ours, theirs in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(ours, theirs)


COSMOS_KEYS = {
    "to_q.0.weight",
    "to_q.1.weight",
    "to_k.0.weight",
    "to_k.1.weight",
    "to_v.0.weight",
    "to_out.0.weight",
}


def cosmos_forward(layer, x, context, cos, sin):
    """Cosmos's Attention by hand: project, "(n c)" heads, RMSNorm, RoPE (self only), SDPA, to_out."""
    heads = layer.heads
    source = x if context is None else context
    q, k, v = (
        rearrange(proj[0](inp), "b s (n c) -> b s n c", n=heads)
        for proj, inp in ((layer.to_q, x), (layer.to_k, source), (layer.to_v, source))
    )
    q = F.rms_norm(q, (q.shape[-1],), layer.to_q[1].weight, eps=1e-6)
    k = F.rms_norm(k, (k.shape[-1],), layer.to_k[1].weight, eps=1e-6)
    if context is None:
        cos_full, sin_full = torch.cat([cos, cos], -1)[:, None], torch.cat([sin, sin], -1)[:, None]

        def rotate_half(t):
            t1, t2 = t.chunk(2, dim=-1)
            return torch.cat([-t2, t1], dim=-1)

        q, k = (t * cos_full + rotate_half(t) * sin_full for t in (q, k))
    out = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
    return layer.to_out(rearrange(out, "b s n c -> b s (n c)"))


@pytest.mark.parametrize("context_dim", [None, 24])
def test_nn_attention_is_cosmos_attention(context_dim):
    torch.manual_seed(0)
    layer = nn.Attention(32, context_dim, heads=4, dim_head=16).double()
    assert set(layer.state_dict()) == COSMOS_KEYS
    assert layer.to_q[1].weight.shape == (16,)
    with torch.no_grad():
        for norm in (layer.to_q[1], layer.to_k[1]):
            norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 2 * 3 * 2, 32, dtype=torch.float64)
    context = None if context_dim is None else torch.randn(2, 7, context_dim, dtype=torch.float64)
    cos, sin = (t.double() for t in ops.rope3d_cos_sin(2, 3, 2, 16, fps=24.0))
    out = layer(x, context, rope_cos=cos, rope_sin=sin)
    torch.testing.assert_close(out, cosmos_forward(layer, x, context, cos, sin), rtol=1e-12, atol=1e-12)
    out.square().sum().backward()
    assert layer.to_q[1].weight.grad is not None and layer.to_k[1].weight.grad.abs().sum() > 0


def test_nn_attention_masks_context_padding():
    torch.manual_seed(0)
    layer = nn.Attention(16, 8, heads=2, dim_head=8)
    x, context = torch.randn(2, 5, 16), torch.randn(2, 6, 8)
    out = layer(x, context, k_lengths=torch.tensor([6, 3]))
    torch.testing.assert_close(out[1], layer(x[1:], context[1:, :3])[0])
    torch.testing.assert_close(out[0], layer(x[:1], context[:1])[0])


def test_a_fast_backend_says_what_it_cannot_take(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    q = torch.randn(1, 3, 1, 8)
    tables = torch.ones(3, 4), torch.zeros(3, 4)
    with pytest.raises(BackendUnavailableError, match="no cuda implementation"):
        ops.qk_norm_rope(q, q, torch.ones(8), torch.ones(8), *tables, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="head dims that are multiples of 16"):
        ops.qk_norm_rope(q, q, torch.ones(8), torch.ones(8), *tables, backend="triton")
    with pytest.raises(BackendUnavailableError, match="head dims that are multiples of 16"):
        ops.attention(q, q, q, backend="triton")


q4 = torch.randn(2, 6, 2, 8)
kv = torch.randn(2, 5, 2, 8)
w8 = torch.ones(8)
tab = torch.ones(6, 4)

BAD = [
    # (call, error type, words the message must contain)
    (lambda: ops.attention(q4, torch.randn(3, 5, 2, 8), kv), ValueError, ["k", "B = 2"]),
    (lambda: ops.attention(q4, kv, torch.randn(2, 5, 3, 8)), ValueError, ["v", "H = 2"]),
    (lambda: ops.attention(q4, torch.randn(2, 5, 2, 4), kv), ValueError, ["k", "D = 8"]),
    (lambda: ops.attention(q4, kv, kv[:, :4]), ValueError, ["v", "sequence length"]),
    (lambda: ops.attention(q4[0], kv, kv), ValueError, ["q", "4-D"]),
    (lambda: ops.attention(q4, kv.long(), kv), TypeError, ["k", "float"]),
    (lambda: ops.attention(q4, kv.half(), kv), TypeError, ["k", "dtype"]),
    (lambda: ops.attention(q4, kv, kv.to("meta")), ValueError, ["v", "device"]),
    (lambda: ops.attention(q4, kv, kv, q_norm_weight=torch.ones(2, 8)), ValueError, ["q_norm_weight", "1-D"]),
    (lambda: ops.attention(q4, kv, kv, k_norm_weight=torch.ones(7)), ValueError, ["k_norm_weight", "(8,)"]),
    (lambda: ops.attention(q4, kv, kv, k_norm_weight=w8.double()), TypeError, ["k_norm_weight", "dtype"]),
    (lambda: ops.attention(q4, q4, q4, rope_cos=tab), ValueError, ["rope_cos", "rope_sin", "together"]),
    (
        lambda: ops.attention(q4, q4, q4, rope_cos=tab[:5], rope_sin=tab[:5]),
        ValueError,
        ["rope_cos", "(6, 4)"],
    ),
    (
        lambda: ops.attention(q4, q4, q4, rope_cos=tab, rope_sin=torch.ones(6, 8)),
        ValueError,
        ["rope_sin", "(6, 4)"],
    ),
    (
        lambda: ops.attention(q4, kv, kv, rope_cos=tab, rope_sin=tab),
        ValueError,
        ["rope_cos", "self-attention"],
    ),
    (
        lambda: ops.attention(q4, q4, q4, rope_cos=tab, rope_sin=tab.double()),
        TypeError,
        ["rope_sin", "dtype"],
    ),
    (lambda: ops.attention(q4, kv, kv, k_lengths=torch.tensor([5])), ValueError, ["k_lengths", "(2,)"]),
    (lambda: ops.attention(q4, kv, kv, k_lengths=torch.tensor([5.0, 1.0])), TypeError, ["k_lengths", "int"]),
    (lambda: ops.attention(q4, kv, kv, k_lengths=[5, 1]), TypeError, ["k_lengths", "Tensor"]),
    (
        lambda: ops.attention(q4, kv, kv, k_lengths=torch.tensor([5, -1])),
        ValueError,
        ["k_lengths", "[0, Sk = 5]"],
    ),
    (
        lambda: ops.attention(q4, kv, kv, k_lengths=torch.tensor([6, 1])),
        ValueError,
        ["k_lengths", "[0, Sk = 5]"],
    ),
    (lambda: ops.attention(q4, kv, kv, softmax_scale=0.0), ValueError, ["softmax_scale"]),
    (lambda: ops.attention(q4, kv, kv, norm_eps=-1.0), ValueError, ["eps"]),
    (lambda: ops.attention(q4, kv, kv, return_lse=1), TypeError, ["return_lse", "bool"]),
    (lambda: ops.attention(q4, kv, kv, backend="fast"), ValueError, ["backend", "fast"]),
    (lambda: ops.qk_norm_rope(q4, kv, w8, w8, tab, tab), ValueError, ["k", "shape"]),
    (lambda: ops.qk_norm_rope(q4, q4, w8, torch.ones(4), tab, tab), ValueError, ["k_norm_weight", "(8,)"]),
    (lambda: ops.qk_norm_rope(q4, q4, w8, w8, tab.t(), tab), ValueError, ["cos", "(6, 4)"]),
    (lambda: ops.rope3d_cos_sin(2, 3, 4, 10), ValueError, ["head_dim", ">= 12"]),
    (lambda: ops.rope3d_cos_sin(2, 3, 4, 13), ValueError, ["head_dim", "even"]),
    (lambda: ops.rope3d_cos_sin(2, 0, 4, 64), ValueError, ["h", ">= 1"]),
    (lambda: ops.rope3d_cos_sin(2, 3, 4, 64, fps=0), ValueError, ["fps", "> 0", "got 0"]),
    (lambda: ops.rope3d_cos_sin(2, 3, 4, 64, offsets=(1, 2)), ValueError, ["offsets", "three"]),
]


@pytest.mark.parametrize(("call", "error", "words"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_is_rejected_clearly(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
