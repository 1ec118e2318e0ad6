"""Benchmark cases shared by ``cosmos-kernels bench`` and the pytest-benchmark suites in benchmarks/.

Each case builds inputs once and offers the same work three ways: our op, the plain PyTorch code a
user would write (eager), and ``torch.compile`` of that same code. Throughput is reported as GB/s of
compulsory memory traffic (each input read once, each output written once), next to the device's
measured copy bandwidth, since these ops are memory-bound; attention, which is compute-bound, reports
TFLOP/s and adds every ``scaled_dot_product_attention`` backend as a peer.
"""

import contextlib
import functools
import importlib
import importlib.util
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange

from cosmos_kernels import ops, reference
from cosmos_kernels._backend import ENV_VAR
from cosmos_kernels.ops.registry import OPS

# The ops' cases, in the registry's order; the whole-model cases (tokenizer, DiT block) follow them.
OP_CASES: tuple[str, ...] = tuple(name for spec in OPS.values() for name in spec.benchmark_cases)
MODEL_CASES = ("tokenizer encode", "tokenizer decode", "dit block fwd", "dit block fwd+bwd")
# L2 is 50 MB on an H100: working sets smaller than this are rotated so each call reads cold memory.
ROTATE_BELOW_BYTES = 256 * 2**20


@dataclass
class Case:
    """One op at one shape: input sets (rotated between calls) and the functions that consume them."""

    name: str
    shape: str
    bytes_moved: int
    inputs: list[tuple[torch.Tensor, ...]]
    op: Callable[..., object]  # ours, taking backend= as a keyword
    eager: Callable[..., object]
    compiled: Callable[..., object] | None = field(default=None)
    flops: int = 0  # set for compute-bound ops: then throughput is reported in TFLOP/s
    frames: int = 0  # set for whole models on video: then throughput is reported in frames/s
    peers: dict[str, Callable[..., object]] = field(default_factory=dict)  # more peers than eager

    def impls(self, backends: list[str], *, with_compile: bool = True) -> dict[str, Callable[..., object]]:
        """Ours once per backend (keyed by backend name), then the peers "eager" and "torch.compile"."""
        impls: dict[str, Callable[..., object]] = {
            backend: functools.partial(self.op, backend=backend) for backend in backends
        }
        impls["eager"] = self.eager
        if with_compile:
            if self.compiled is None:
                self.compiled = torch.compile(self.eager)
            impls["torch.compile"] = self.compiled
        return impls | self.peers

    def throughput(self, seconds: float) -> str:
        if self.flops:
            return f"{self.flops / seconds / 1e12:.0f} TFLOP/s"
        if self.frames:
            return f"{self.frames / seconds:.0f} frames/s"
        return f"{self.bytes_moved / seconds / 1e9:.0f} GB/s"


def _modulate_eager(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    x_hat = F.layer_norm(x.float(), (x.shape[-1],), eps=1e-6)
    return (x_hat * (1 + scale.float()[:, None]) + shift.float()[:, None]).to(x.dtype)


def _gated_eager(
    x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    h = x.float() + gate.float()[:, None] * y.float()
    return h.to(x.dtype), _modulate_eager(h, shift, scale).to(x.dtype)


def _shape_label(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _input_sets(make: Callable[[], tuple[torch.Tensor, ...]]) -> list[tuple[torch.Tensor, ...]]:
    first = make()
    size = sum(t.numel() * t.element_size() for t in first)
    extra = min(math.ceil(ROTATE_BELOW_BYTES / size) - 1, 7)
    return [first] + [make() for _ in range(extra)]


def adaln_case(batch: int, seq: int, dim: int, dtype: torch.dtype, device: str) -> Case:
    def make() -> tuple[torch.Tensor, ...]:
        x = torch.randn(batch, seq, dim, dtype=dtype, device=device)
        shift, scale = torch.randn(2, batch, dim, dtype=dtype, device=device) * 0.1
        return x, shift, scale

    elem = torch.finfo(dtype).bits // 8
    return Case(
        name="adaln_modulate",
        shape=_shape_label((batch, seq, dim)),
        bytes_moved=2 * batch * seq * dim * elem,
        inputs=_input_sets(make),
        op=ops.adaln_modulate,
        eager=_modulate_eager,
    )


def gated_case(batch: int, seq: int, dim: int, dtype: torch.dtype, device: str) -> Case:
    def make() -> tuple[torch.Tensor, ...]:
        x, y = torch.randn(2, batch, seq, dim, dtype=dtype, device=device)
        gate, shift, scale = torch.randn(3, batch, dim, dtype=dtype, device=device) * 0.1
        return x, y, gate, shift, scale

    elem = torch.finfo(dtype).bits // 8
    return Case(
        name="gated_residual_adaln",
        shape=_shape_label((batch, seq, dim)),
        bytes_moved=4 * batch * seq * dim * elem,
        inputs=_input_sets(make),
        op=ops.gated_residual_adaln,
        eager=_gated_eager,
    )


def haar3d_case(video_shape: tuple[int, ...], dtype: torch.dtype, device: str, *, inverse: bool) -> Case:
    analysed = reference.haar3d_analysis(torch.empty(video_shape, device="meta"), 1, True)
    in_shape = tuple(analysed.shape) if inverse else video_shape
    out_numel = math.prod(video_shape if inverse else analysed.shape)

    def make() -> tuple[torch.Tensor, ...]:
        return (torch.randn(in_shape, dtype=dtype, device=device),)

    fn = ops.haar3d_synthesis if inverse else ops.haar3d_analysis
    eager = reference.haar3d_synthesis if inverse else reference.haar3d_analysis
    return Case(
        name="haar3d_synthesis" if inverse else "haar3d_analysis",
        shape=_shape_label(video_shape),
        bytes_moved=(math.prod(in_shape) + out_numel) * (torch.finfo(dtype).bits // 8),
        inputs=_input_sets(make),
        op=functools.partial(fn, levels=1, causal=True),
        eager=lambda v: eager(v, 1, True),
    )


def _group_norm_silu_eager(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, groups: int
) -> torch.Tensor:
    """The tokenizer's code before the fused op: GroupNorm of each frame on a ``(b t) c h w`` copy,
    then SiLU, then the copy back to (B, C, T, H, W)."""
    frames = rearrange(x, "b c t h w -> (b t) c h w")
    out = F.silu(F.group_norm(frames, groups, weight, bias, eps=1e-6))
    return rearrange(out, "(b t) c h w -> b c t h w", b=x.shape[0])


def _affine_norm_inputs(
    shape: tuple[int, ...], dtype: torch.dtype, device: str
) -> Callable[[], tuple[torch.Tensor, ...]]:
    """Inputs of a norm + per-channel affine over (B, C, ...) activations: x, weight near 1, small bias."""

    def make() -> tuple[torch.Tensor, ...]:
        x = torch.randn(shape, dtype=dtype, device=device)
        weight = 1 + 0.1 * torch.randn(shape[1], dtype=dtype, device=device)
        bias = 0.1 * torch.randn(shape[1], dtype=dtype, device=device)
        return x, weight, bias

    return make


def group_norm_silu_case(shape: tuple[int, ...], groups: int, dtype: torch.dtype, device: str) -> Case:
    """The video tokenizer's residual-block prologue on one (B, C, T, H, W) activation: GroupNorm per
    frame, affine, SiLU."""

    def ours(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, backend: str) -> torch.Tensor:
        return ops.group_norm_silu(x, weight, bias, num_groups=groups, backend=backend)

    return Case(
        name="group_norm_silu",
        shape=f"{_shape_label(shape)}, {groups} group{'s' if groups > 1 else ''}",
        # x read once and the output written once; the per-channel affine is negligible.
        bytes_moved=2 * math.prod(shape) * (torch.finfo(dtype).bits // 8),
        inputs=_input_sets(_affine_norm_inputs(shape, dtype, device)),
        op=ours,
        eager=functools.partial(_group_norm_silu_eager, groups=groups),
    )


def _rms_norm_channels_silu_eager(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, eps: float = 1e-12
) -> torch.Tensor:
    """diffusers' ``WanRMS_norm`` (F.normalize over channels, times sqrt(C) and the gain, plus the bias),
    then SiLU, as the Wan VAE's residual blocks run it."""
    per_channel = (-1,) + (1,) * (x.dim() - 2)
    scale = x.shape[1] ** 0.5 * weight.view(per_channel)
    return F.silu(F.normalize(x, dim=1, eps=eps) * scale + bias.view(per_channel))


def rms_norm_channels_silu_case(shape: tuple[int, ...], dtype: torch.dtype, device: str) -> Case:
    """The Wan VAE's norm + SiLU (Cosmos Predict2/2.5) on one (B, C, T, H, W) activation."""

    def ours(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, *, backend: str) -> torch.Tensor:
        return ops.rms_norm_channels_silu(x, weight, bias, backend=backend)

    return Case(
        name="rms_norm_channels_silu",
        shape=_shape_label(shape),
        # x read once and the output written once (the kernel's second read of x hits L2 or not: the
        # compulsory traffic is what the peers must move too).
        bytes_moved=2 * math.prod(shape) * (torch.finfo(dtype).bits // 8),
        inputs=_input_sets(_affine_norm_inputs(shape, dtype, device)),
        op=ours,
        eager=_rms_norm_channels_silu_eager,
    )


def _norm_rope_eager(
    x: torch.Tensor, weight: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """What a PyTorch user writes: per-head RMSNorm, then rotate-half RoPE, in x's dtype."""
    x = F.rms_norm(x.float(), (x.shape[-1],), weight.float(), eps=1e-6)
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos[:, None], sin[:, None]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(weight.dtype)


def _sdpa_eager(q, k, v, q_weight, k_weight, cos, sin, sdpa_backend=None):
    q, k = _norm_rope_eager(q, q_weight, cos, sin), _norm_rope_eager(k, k_weight, cos, sin)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # SDPA wants (B, H, S, D)
    if sdpa_backend is None:
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
    with torch.nn.attention.sdpa_kernel([sdpa_backend]):
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)


# The FlashAttention packages a user may have beside PyTorch: FA3 (Hopper) and FA2, both BSHD.
_FLASH_ATTN_MODULES = {"flash_attn3": "flash_attn_interface", "flash_attn2": "flash_attn"}


def flash_attn_functions() -> dict[str, Callable[..., object]]:
    """``flash_attn_func`` of each installed FlashAttention package, by peer name."""
    found = {}
    for name, module in _FLASH_ATTN_MODULES.items():
        if importlib.util.find_spec(module) is not None:
            found[name] = importlib.import_module(module).flash_attn_func
    return found


def _flash_attn_eager(q, k, v, q_weight, k_weight, cos, sin, flash_attn_func=None):
    q, k = _norm_rope_eager(q, q_weight, cos, sin), _norm_rope_eager(k, k_weight, cos, sin)
    out = flash_attn_func(q, k, v)
    # Some FA3 releases return (out, lse).
    return out[0] if isinstance(out, tuple) else out


def qk_norm_rope_case(
    grid: tuple[int, int, int], heads: int, dim: int, dtype: torch.dtype, device: str
) -> Case:
    """The attention prologue alone on q and k: per-head RMSNorm, then 3D RoPE."""
    seq = math.prod(grid)
    cos, sin = ops.rope3d_cos_sin(*grid, dim, device=device)

    def make() -> tuple[torch.Tensor, ...]:
        q, k = torch.randn(2, 1, seq, heads, dim, dtype=dtype, device=device).unbind(0)
        weights = (1 + 0.1 * torch.randn(2, dim, dtype=dtype, device=device)).unbind(0)
        return q, k, *weights, cos, sin

    def ours(q, k, q_weight, k_weight, cos, sin, *, backend: str) -> tuple[torch.Tensor, torch.Tensor]:
        return ops.qk_norm_rope(q, k, q_weight, k_weight, cos, sin, backend=backend)

    def eager(q, k, q_weight, k_weight, cos, sin) -> tuple[torch.Tensor, torch.Tensor]:
        return _norm_rope_eager(q, q_weight, cos, sin), _norm_rope_eager(k, k_weight, cos, sin)

    element = torch.finfo(dtype).bits // 8
    return Case(
        name="qk_norm_rope",
        shape=f"{_shape_label(grid)} tokens, {heads}x{dim}",
        # q and k read and written once; the tables are read once per head but stay in L2.
        bytes_moved=4 * seq * heads * dim * element,
        inputs=_input_sets(make),
        op=ours,
        eager=eager,
    )


def with_backward(fn: Callable[..., torch.Tensor]) -> Callable[..., None]:
    """Forward and backward of fn: the inputs are leaves that require grad."""

    def run(*args: torch.Tensor, **kwargs: object) -> None:
        out = fn(*args, **kwargs)
        out.backward(torch.ones_like(out))
        for t in args:
            if isinstance(t, torch.Tensor):
                t.grad = None

    return run


def attention_case(
    grid: tuple[int, int, int], heads: int, dim: int, dtype: torch.dtype, device: str, *, backward: bool
) -> Case:
    """Self-attention of a DiT block over a (T, H, W) token grid: QK-RMSNorm, 3D RoPE, softmax."""
    seq = math.prod(grid)
    cos, sin = ops.rope3d_cos_sin(*grid, dim, device=device)

    def make() -> tuple[torch.Tensor, ...]:
        q, k, v = torch.randn(3, 1, seq, heads, dim, dtype=dtype, device=device).unbind(0)
        weights = (1 + 0.1 * torch.randn(2, dim, dtype=dtype, device=device)).unbind(0)
        leaves = [t.contiguous().requires_grad_(backward) for t in (q, k, v, *weights)]
        return (*leaves, cos, sin)

    def ours(q, k, v, q_weight, k_weight, cos, sin, *, backend: str) -> torch.Tensor:
        return ops.attention(
            q,
            k,
            v,
            q_norm_weight=q_weight,
            k_norm_weight=k_weight,
            rope_cos=cos,
            rope_sin=sin,
            backend=backend,
        )

    wrap = with_backward if backward else (lambda fn: fn)
    peers = {}
    if device.startswith("cuda"):
        backends = torch.nn.attention.SDPBackend
        for name, sdpa_backend in (
            ("sdpa-cudnn", backends.CUDNN_ATTENTION),
            ("sdpa-flash", backends.FLASH_ATTENTION),
            ("sdpa-efficient", backends.EFFICIENT_ATTENTION),
        ):
            peers[name] = wrap(functools.partial(_sdpa_eager, sdpa_backend=sdpa_backend))
        for name, function in flash_attn_functions().items():
            peers[name] = wrap(functools.partial(_flash_attn_eager, flash_attn_func=function))
    matmul_flops = 4 * seq * seq * heads * dim  # QK^T and PV, 2 flops per multiply-add
    return Case(
        name="attention fwd+bwd" if backward else "attention fwd",
        shape=f"{_shape_label(grid)} tokens, {heads}x{dim}",
        bytes_moved=0,
        inputs=[make()],
        op=wrap(ours),
        eager=wrap(_sdpa_eager),
        # Compile the forward only: a compiled function that calls .backward() breaks the graph there.
        compiled=wrap(torch.compile(_sdpa_eager)),
        flops=matmul_flops * (3.5 if backward else 1),  # backward: 2.5x the forward's matmuls
        peers=peers,
    )


def _dit_block_eager(
    block: torch.nn.Module,
    x: torch.Tensor,
    emb: torch.Tensor,
    adaln_lora: torch.Tensor,
    context: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
) -> torch.Tensor:
    """The same DiT block as a PyTorch user writes it from Cosmos's code, on the block's own weights:
    LayerNorm then modulation, norm + RoPE + SDPA (best backend), GELU MLP, gated residuals."""
    for sub in block.blocks:
        shift, scale, gate = (m.unsqueeze(1) for m in sub.modulation(emb, adaln_lora))
        h = F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale) + shift
        if sub.block_type == "mlp":
            y = sub.block(h)
        else:
            attn = sub.block.attn
            source = h if sub.block_type == "fa" else context
            q, k, v = (
                proj[0](inp).unflatten(-1, (attn.heads, attn.dim_head))
                for proj, inp in ((attn.to_q, h), (attn.to_k, source), (attn.to_v, source))
            )
            if sub.block_type == "fa":
                y = _sdpa_eager(q, k, v, attn.to_q[1].weight, attn.to_k[1].weight, cos, sin)
            else:
                q = F.rms_norm(q, (attn.dim_head,), attn.to_q[1].weight, eps=1e-6)
                k = F.rms_norm(k, (attn.dim_head,), attn.to_k[1].weight, eps=1e-6)
                y = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
            y = attn.to_out(y.flatten(-2))
        x = x + gate * y
    return x


def dit_block_case(
    grid: tuple[int, int, int],
    dim: int,
    heads: int,
    text_tokens: int,
    dtype: torch.dtype,
    device: str,
    *,
    backward: bool,
) -> Case:
    """One Cosmos DiT block (AdaLN-LoRA, self-attention with QK-norm and 3D RoPE, cross-attention to
    T5-width text, GELU MLP) on a (T, H, W) token grid: ours (fused ops) vs the same block in PyTorch."""
    from cosmos_kernels.nn import GeneralDITTransformerBlock

    seq = math.prod(grid)
    block = GeneralDITTransformerBlock(dim, 1024, heads, "FA-CA-MLP", 4.0, 256).to(device, dtype)
    cos, sin = ops.rope3d_cos_sin(*grid, dim // heads, device=device)

    def make() -> tuple[torch.Tensor, ...]:
        x = torch.randn(1, seq, dim, dtype=dtype, device=device).requires_grad_(backward)
        emb = torch.randn(1, dim, dtype=dtype, device=device)
        lora = 0.1 * torch.randn(1, 3 * dim, dtype=dtype, device=device)
        context = torch.randn(1, text_tokens, 1024, dtype=dtype, device=device)
        return x, emb, lora, context, cos, sin

    def ours(x, emb, lora, context, cos, sin, *, backend: str) -> torch.Tensor:
        with _auto_backend(backend):
            return block(x, emb, lora, context, cos, sin)

    eager = functools.partial(_dit_block_eager, block)
    wrap = with_backward if backward else (lambda fn: fn)
    linear_flops = 2 * seq * dim * dim * (4 + 2 + 8) + 2 * 2 * text_tokens * 1024 * dim
    attention_flops = 4 * seq * seq * dim + 4 * seq * text_tokens * dim
    flops = linear_flops + attention_flops
    return Case(
        name="dit block fwd+bwd" if backward else "dit block fwd",
        shape=f"{_shape_label(grid)} tokens, D={dim}, {text_tokens} text",
        bytes_moved=0,
        inputs=[make()],
        op=wrap(ours),
        eager=wrap(eager),
        compiled=wrap(torch.compile(eager)),
        flops=flops * (3 if backward else 1),  # backward: about twice the forward's matmuls
    )


@contextlib.contextmanager
def _auto_backend(backend: str) -> Iterator[None]:
    """Every op the model calls with backend="auto" runs on ``backend`` meanwhile."""
    previous = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = backend
    try:
        yield
    finally:
        if previous is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = previous


def tokenizer_case(
    name: str, video_shape: tuple[int, ...], dtype: torch.dtype, device: str, *, decode: bool
) -> Case:
    """A whole tokenizer (random weights) encoding or decoding one clip: ours vs the reference ops."""
    from cosmos_kernels.models import build_tokenizer

    model = build_tokenizer(name).to(device, dtype).eval()
    video = torch.rand(video_shape, device=device, dtype=dtype) * 2 - 1
    with torch.no_grad():
        latents = model.encode(video)
    fn = model.decode if decode else model.encode

    def run(x: torch.Tensor, *, backend: str = "torch") -> torch.Tensor:
        with torch.no_grad(), _auto_backend(backend):
            return fn(x)

    compiled_fn = torch.compile(fn, dynamic=False)

    def compiled(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), _auto_backend("torch"):
            return compiled_fn(x)

    return Case(
        name=f"{name} {'decode' if decode else 'encode'}",
        shape=_shape_label(video_shape),
        bytes_moved=0,
        frames=video_shape[2],
        inputs=[(latents,) if decode else (video,)],
        op=run,
        eager=run,  # the same network with every op on the reference (torch) backend
        compiled=compiled,
    )


def _sageattention_eager(q, k, v, q_weight, k_weight, cos, sin, sageattn=None):
    """Our exact prologue pass, then SageAttention's Triton release (its own k smoothing and INT8
    quantization passes, INT8 QK^T, PV in fp16 with v cast to fp16)."""
    q, k = ops.qk_norm_rope(q, k, q_weight, k_weight, cos, sin)
    return sageattn(q, k, v, tensor_layout="NHD")


def attention_8bit_case(
    grid: tuple[int, int, int], heads: int, dim: int, dtype: torch.dtype, device: str, precision: str
) -> Case:
    """8-bit self-attention of a DiT block, quantizing prologue included, against exact attention
    (ours: prologue + cuDNN; SDPA cuDNN after an eager prologue) and SageAttention 1.0.6 when installed."""
    seq = math.prod(grid)
    cos, sin = ops.rope3d_cos_sin(*grid, dim, device=device)

    def make() -> tuple[torch.Tensor, ...]:
        q, k, v = torch.randn(3, 1, seq, heads, dim, dtype=dtype, device=device).unbind(0)
        weights = (1 + 0.1 * torch.randn(2, dim, dtype=dtype, device=device)).unbind(0)
        return (*(t.contiguous() for t in (q, k, v, *weights)), cos, sin)

    def attend(q, k, v, q_weight, k_weight, cos, sin, *, backend: str, precision: str | None) -> torch.Tensor:
        return ops.attention(
            q, k, v, q_norm_weight=q_weight, k_norm_weight=k_weight, rope_cos=cos, rope_sin=sin,
            backend=backend, precision=precision,
        )  # fmt: skip

    peers = {"exact": functools.partial(attend, backend="auto", precision=None)}
    if device.startswith("cuda"):
        cudnn = torch.nn.attention.SDPBackend.CUDNN_ATTENTION
        peers["sdpa-cudnn"] = functools.partial(_sdpa_eager, sdpa_backend=cudnn)
        if importlib.util.find_spec("sageattention") is not None:
            sageattn = importlib.import_module("sageattention").sageattn
            peers["sageattention"] = functools.partial(_sageattention_eager, sageattn=sageattn)
    return Case(
        name=f"attention-8bit {precision} fwd",
        shape=f"{_shape_label(grid)} tokens, {heads}x{dim}",
        bytes_moved=0,
        inputs=[make()],
        op=functools.partial(attend, precision=precision),
        eager=_sdpa_eager,
        compiled=torch.compile(_sdpa_eager),
        flops=4 * seq * seq * heads * dim,
        peers=peers,
    )


def cases(size: str, dtype: torch.dtype, device: str, only: Sequence[str] | None = None) -> list[Case]:
    """``quick``: small shapes for any machine; ``cosmos``: the Cosmos-7B 121-frame 720p shapes.

    ``only``: names of the cases to build, each a whole case name ("attention fwd") or its op
    ("attention": both directions); the others are not built, so that a short GPU session spends its
    time on the cases it asks for. An unknown name raises ValueError listing the known ones.
    """
    if size == "cosmos":
        seq, dim, video, grid, heads = 56320, 4096, (1, 3, 121, 704, 1280), (16, 44, 80), 32
        tokenizer, clip, block = "cv8x8x8", video, (4096, 32)
        # The widest tokenizer activation of a 121-frame 720p clip: 256 channels, 31 frames at 176x320.
        norm_shape = (1, 256, 31, 176, 320)
    elif device == "cpu":
        seq, dim, video, grid, heads = 1024, 512, (1, 3, 9, 64, 96), (2, 8, 16), 2
        tokenizer, clip, block = "tiny-cv8x8x8", (1, 3, 9, 32, 32), (256, 2)
        norm_shape = (1, 32, 3, 16, 24)
    else:
        seq, dim, video, grid, heads = 8192, 2048, (1, 3, 33, 256, 448), (4, 32, 64), 16
        tokenizer, clip, block = "cv8x8x8", (1, 3, 17, 256, 256), (2048, 16)
        norm_shape = (1, 128, 9, 64, 112)
    op_builders: dict[str, Callable[[], Case]] = {
        "adaln_modulate": lambda: adaln_case(1, seq, dim, dtype, device),
        "gated_residual_adaln": lambda: gated_case(1, seq, dim, dtype, device),
        "haar3d_analysis": lambda: haar3d_case(video, dtype, device, inverse=False),
        "haar3d_synthesis": lambda: haar3d_case(video, dtype, device, inverse=True),
        "group_norm_silu": lambda: group_norm_silu_case(norm_shape, 1, dtype, device),
        "rms_norm_channels_silu": lambda: rms_norm_channels_silu_case(norm_shape, dtype, device),
        "qk_norm_rope": lambda: qk_norm_rope_case(grid, heads, 128, dtype, device),
        "attention fwd": lambda: attention_case(grid, heads, 128, dtype, device, backward=False),
        "attention fwd+bwd": lambda: attention_case(grid, heads, 128, dtype, device, backward=True),
        "attention-8bit qk-int8 fwd": lambda: attention_8bit_case(grid, heads, 128, dtype, device, "qk-int8"),
        "attention-8bit qk-int8-pv-fp8 fwd": lambda: attention_8bit_case(
            grid, heads, 128, dtype, device, "qk-int8-pv-fp8"
        ),
    }
    if set(op_builders) != set(OP_CASES):
        raise RuntimeError(f"benchmark builders {sorted(op_builders)} differ from the registry's {OP_CASES}")
    builders = {name: op_builders[name] for name in OP_CASES} | {
        f"{tokenizer} encode": lambda: tokenizer_case(tokenizer, clip, dtype, device, decode=False),
        f"{tokenizer} decode": lambda: tokenizer_case(tokenizer, clip, dtype, device, decode=True),
        "dit block fwd": lambda: dit_block_case(grid, *block, 512, dtype, device, backward=False),
        "dit block fwd+bwd": lambda: dit_block_case(grid, *block, 512, dtype, device, backward=True),
    }
    # diffusers' models only when asked for by name (--only diffusers): each case builds and compiles
    # two copies of a model, and the default run times our ops.
    if only is not None and importlib.util.find_spec("diffusers") is not None:
        from cosmos_kernels.tools.benchmarking_diffusers import diffusers_cases

        builders.update(diffusers_cases(size, dtype, device))
    names = list(builders)
    if only is not None:

        def asked(name: str, word: str) -> bool:
            return name == word or name.startswith(word + " ")

        unknown = [word for word in only if not any(asked(name, word) for name in names)]
        if unknown or not only:
            what = f"unknown case names {unknown}" if unknown else "no case names given"
            raise ValueError(f"only: {what}; known: {', '.join(names)}")
        names = [name for name in names if any(asked(name, word) for word in only)]
    return [builders[name]() for name in names]


def autotuned_configs() -> dict[str, dict[str, dict[str, object]]]:
    """What the Triton autotuner chose so far in this process, per kernel and tuning key (the key's
    values, then the dtypes of the tensor arguments): tile sizes, warps and stages."""
    from importlib.util import find_spec

    if find_spec("triton") is None:
        return {}
    import triton

    from cosmos_kernels.triton import adaln, attention

    kernels = {
        "attention fwd": attention._attn_fwd_kernel,
        "attention dK/dV": attention._attn_bwd_dkdv_kernel,
        "attention dQ": attention._attn_bwd_dq_kernel,
        "adaln fwd": adaln._adaln_fwd_kernel,
    }
    return {
        name: {
            str(key): {**config.kwargs, "num_warps": config.num_warps, "num_stages": config.num_stages}
            for key, config in kernel.cache.items()
        }
        for name, kernel in kernels.items()
        # Under the interpreter the kernels run with fixed tiles, not autotuned.
        if isinstance(kernel, triton.runtime.Autotuner)
    }


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_call(fn: Callable[..., object], inputs: list[tuple[torch.Tensor, ...]], *, reps: int = 20) -> float:
    """Median seconds of one call, inputs rotated; CUDA events on GPUs, perf_counter elsewhere."""
    device = str(inputs[0][0].device)
    for args in inputs[:2]:  # warm-up: compilation, autotuning, allocator
        fn(*args)
    _sync(device)
    times = []
    for i in range(reps):
        args = inputs[i % len(inputs)]
        if device.startswith("cuda"):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn(*args)
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            begin = time.perf_counter()
            fn(*args)
            times.append(time.perf_counter() - begin)
    return statistics.median(times)


def copy_bandwidth(device: str, nbytes: int = 512 * 2**20) -> float:
    """Bytes per second of a device-to-device copy (read + write), the ceiling for these ops."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = time_call(lambda s: dst.copy_(s), [(src,)], reps=10)
    return 2 * nbytes / seconds
