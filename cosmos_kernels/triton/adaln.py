"""AdaLN modulation and the gated residual before it, as Triton kernels and their launchers.

Spec: ``cosmos_kernels/reference/adaln.py``. Two kernels, each with a ``GATED`` flag:

- forward: one tile of ``ROWS`` tokens x ``BLOCK_D`` channels per program (``ROWS`` > 1 only when D is
  small); optionally ``h = x + gate * y`` first, then LayerNorm without affine and
  ``x_hat * (1 + scale) + shift``. One read of every input, one write of every output.
- backward: grid (frame, chunk of the frame's tokens). The frame fixes the modulation row, so scale and
  gate are loaded once per program, and the frame-sums (grad_shift, grad_scale, grad_gate) are kept in
  fp32 registers and written as per-chunk partials that torch sums in a fixed order (deterministic, no
  atomics). Row statistics are recomputed from x (or h) rather than saved.

The launchers trust the caller (``cosmos_kernels.ops``) for the input contract: x, y, grads and h are
(B, S, D) with unit stride in D; shift, scale and gate are (B, T, D) with unit stride in D; S % T == 0;
one dtype among float32/float16/bfloat16; 1 <= D <= MAX_D. Other strides are free and passed through.
"""

import functools

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output
from cosmos_kernels._backend import triton_interpreter_enabled

_INTERPRET = triton_interpreter_enabled()

MAX_D = 16384

# Tiles of about this many elements keep small-D rows from leaving most lanes idle.
_TILE_ELEMS = 2048
_MAX_ROWS = 64
# Backward grid size: a few programs per SM fills the GPU; more only grows the partial-sum workspace.
_PROGRAMS_PER_SM = 4
# Each backward chunk writes 2-3 fp32 rows of partials; 32 or more input rows keeps that under ~5%.
_MIN_ROWS_PER_CHUNK = 32


@triton.jit
def _normalize(h, mask, D, eps):
    """Row-wise LayerNorm of a [ROWS, BLOCK_D] fp32 tile whose masked-off entries are 0."""
    # IEEE division (div_rn), not the GPU's approximate one, so that the mean of a constant row is
    # that constant and the row centers to exact zeros, as in the reference.
    mean = tl.div_rn(tl.sum(h, axis=1), D * 1.0)
    # Padding must not count towards the variance: it would be (0 - mean)^2 otherwise.
    diff = tl.where(mask, h - mean[:, None], 0.0)
    var = tl.div_rn(tl.sum(diff * diff, axis=1), D * 1.0)
    rstd = 1.0 / tl.sqrt(var + eps)
    return diff * rstd[:, None], rstd


def _forward_warps_tuned(fn: triton.runtime.JITFunction) -> triton.runtime.JITFunction:
    """The forward autotuned on CUDA over num_warps: the ladder's choice and its half and double.

    One row per program reduces twice across its warps, and how many warps hide that best is the GPU's
    to say: the ladder's fixed choice ran below torch.compile (benchmarks/RESULTS.md). The interpreter
    takes the ladder.
    """
    if _INTERPRET:
        return fn
    configs = [triton.Config({}, num_warps=w) for w in (2, 4, 8, 16, 32)]

    def prune(configs: list, named_args: dict, **kwargs: object) -> list:
        ladder = _tile(named_args["D"], backward=False)[2]
        return [c for c in configs if ladder // 2 <= c.num_warps <= 2 * ladder]

    return triton.autotune(configs, key=["D", "GATED"], prune_configs_by={"early_config_prune": prune})(fn)


@_forward_warps_tuned
@triton.jit
def _adaln_fwd_kernel(
    x_ptr, y_ptr, gate_ptr, shift_ptr, scale_ptr, h_ptr, out_ptr,
    stride_xb, stride_xs, stride_yb, stride_ys,
    stride_gb, stride_gt, stride_shb, stride_sht, stride_scb, stride_sct,
    n_rows, S, L, D, eps,
    GATED: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # int64 from the start: B*S*D and batch strides of sliced tensors can pass 2^31.
    rows = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK_D)
    row_ok = rows < n_rows
    mask = row_ok[:, None] & (cols < D)[None, :]
    b = rows // S
    s = rows % S
    t = s // L

    x = tl.load(x_ptr + (b * stride_xb + s * stride_xs)[:, None] + cols[None, :], mask=mask, other=0.0)
    h = x.to(tl.float32)
    if GATED:
        y = tl.load(y_ptr + (b * stride_yb + s * stride_ys)[:, None] + cols[None, :], mask=mask, other=0.0)
        gate = tl.load(
            gate_ptr + (b * stride_gb + t * stride_gt)[:, None] + cols[None, :], mask=mask, other=0.0
        )
        h = h + gate.to(tl.float32) * y.to(tl.float32)
        tl.store(h_ptr + rows[:, None] * D + cols[None, :], h.to(h_ptr.dtype.element_ty), mask=mask)

    # The modulation sees h in fp32, not the rounded h stored above (as the reference does).
    h_hat, _ = _normalize(h, mask, D, eps)
    shift = tl.load(
        shift_ptr + (b * stride_shb + t * stride_sht)[:, None] + cols[None, :], mask=mask, other=0.0
    )
    scale = tl.load(
        scale_ptr + (b * stride_scb + t * stride_sct)[:, None] + cols[None, :], mask=mask, other=0.0
    )
    out = h_hat * (1.0 + scale.to(tl.float32)) + shift.to(tl.float32)
    tl.store(out_ptr + rows[:, None] * D + cols[None, :], out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _adaln_bwd_kernel(
    grad_h_ptr, grad_out_ptr, h_ptr, y_ptr, gate_ptr, scale_ptr, grad_x_ptr, grad_y_ptr, ws_ptr,
    stride_ghb, stride_ghs, stride_gob, stride_gos, stride_hb, stride_hs, stride_yb, stride_ys,
    stride_gb, stride_gt, stride_scb, stride_sct,
    S, T, L, D, rows_per_chunk, eps,
    GATED: tl.constexpr, ROWS: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    frame = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    n_chunks = tl.num_programs(1)
    b = frame // T
    t = frame % T
    cols = tl.arange(0, BLOCK_D)
    col_ok = cols < D

    scale = tl.load(scale_ptr + b * stride_scb + t * stride_sct + cols, mask=col_ok, other=0.0)
    one_plus_scale = 1.0 + scale.to(tl.float32)
    if GATED:
        gate = tl.load(gate_ptr + b * stride_gb + t * stride_gt + cols, mask=col_ok, other=0.0)
        gate = gate.to(tl.float32)

    acc_shift = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    acc_scale = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)
    acc_gate = tl.zeros([ROWS, BLOCK_D], dtype=tl.float32)

    chunk_start = chunk * rows_per_chunk
    chunk_end = tl.minimum(chunk_start + rows_per_chunk, L)
    for start in range(chunk_start, chunk_end, ROWS):
        local = start + tl.arange(0, ROWS)
        row_ok = local < chunk_end
        mask = row_ok[:, None] & col_ok[None, :]
        s = t * L + local
        rows = b * S + s

        h = tl.load(h_ptr + (b * stride_hb + s * stride_hs)[:, None] + cols[None, :], mask=mask, other=0.0)
        go = tl.load(
            grad_out_ptr + (b * stride_gob + s * stride_gos)[:, None] + cols[None, :], mask=mask, other=0.0
        )
        go = go.to(tl.float32)
        h_hat, rstd = _normalize(h.to(tl.float32), mask, D, eps)

        # LayerNorm input-gradient of g = grad_out * (1 + scale); padding is 0 in both g and h_hat.
        g = go * one_plus_scale[None, :]
        mean_g = tl.div_rn(tl.sum(g, axis=1), D * 1.0)
        mean_gh = tl.div_rn(tl.sum(g * h_hat, axis=1), D * 1.0)
        dx = rstd[:, None] * (g - mean_g[:, None] - h_hat * mean_gh[:, None])
        acc_shift += go
        acc_scale += go * h_hat

        if GATED:
            gh = tl.load(
                grad_h_ptr + (b * stride_ghb + s * stride_ghs)[:, None] + cols[None, :], mask=mask, other=0.0
            )
            y = tl.load(
                y_ptr + (b * stride_yb + s * stride_ys)[:, None] + cols[None, :], mask=mask, other=0.0
            )
            dx += gh.to(tl.float32)
            acc_gate += dx * y.to(tl.float32)
            tl.store(
                grad_y_ptr + rows[:, None] * D + cols[None, :],
                (dx * gate[None, :]).to(grad_y_ptr.dtype.element_ty),
                mask=mask,
            )
        tl.store(
            grad_x_ptr + rows[:, None] * D + cols[None, :], dx.to(grad_x_ptr.dtype.element_ty), mask=mask
        )

    # Workspace (n_acc, frames, chunks, D) fp32: shift partials, scale partials, then gate partials.
    ws_stride = tl.num_programs(0).to(tl.int64) * n_chunks * D
    ws = ws_ptr + (frame * n_chunks + chunk) * D + cols
    tl.store(ws, tl.sum(acc_shift, axis=0), mask=col_ok)
    tl.store(ws + ws_stride, tl.sum(acc_scale, axis=0), mask=col_ok)
    if GATED:
        tl.store(ws + 2 * ws_stride, tl.sum(acc_gate, axis=0), mask=col_ok)


def _tile(D: int, backward: bool) -> tuple[int, int, int]:
    """(BLOCK_D, ROWS, num_warps) for rows of D channels."""
    block_d = triton.next_power_of_2(D)
    rows = max(1, min(_MAX_ROWS, _TILE_ELEMS // block_d))
    elems = rows * block_d
    if backward:
        # The backward holds about ten fp32 values per element (three frame-sum accumulators, the
        # modulation rows, the row's inputs), so it gets more warps than the forward: 4-8 elements per
        # thread keeps sm_90 ptxas within 128 registers with no spills up to D = 4096 and only a few
        # up to D = 8192. Wider rows spill, correct but slower.
        num_warps = 32 if elems >= 16384 else 16 if elems >= 4096 else 8 if elems >= 2048 else 4
    else:
        # Liger-Kernel's ladder; the forward holds few values per element and stays under 80 registers.
        num_warps = 16 if elems >= 8192 else 8 if elems >= 2048 else 4
    return block_d, rows, num_warps


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132  # H100; only the interpreter gets here, where any value is correct


def _num_chunks(frames: int, rows_per_frame: int, device: torch.device) -> int:
    want = triton.cdiv(_PROGRAMS_PER_SM * _sm_count(device), frames)
    most = triton.cdiv(rows_per_frame, _MIN_ROWS_PER_CHUNK)
    return max(1, min(want, most))


def _launch_forward(
    x: torch.Tensor,
    y: torch.Tensor | None,
    gate: torch.Tensor | None,
    shift: torch.Tensor,
    scale: torch.Tensor,
    h: torch.Tensor | None,
    out: torch.Tensor,
    eps: float,
) -> None:
    """Fill ``out`` (and ``h`` when gated: y, gate and h given) for contiguous (B, S, D) outputs."""
    B, S, D = x.shape
    n_rows = B * S
    if n_rows == 0:
        return
    # The GATED=False kernel never touches y, gate or h, so any valid tensor stands in for them.
    gated = y is not None
    y_ = y if y is not None else x
    gate_ = gate if gate is not None else shift
    block_d, rows, num_warps = _tile(D, backward=False)
    _adaln_fwd_kernel[(triton.cdiv(n_rows, rows),)](
        x, y_, gate_, shift, scale, h if h is not None else out, out,
        x.stride(0), x.stride(1), y_.stride(0), y_.stride(1),
        gate_.stride(0), gate_.stride(1), shift.stride(0), shift.stride(1), scale.stride(0), scale.stride(1),
        n_rows, S, S // shift.shape[1], D, eps,
        GATED=gated, ROWS=rows, BLOCK_D=block_d, **({"num_warps": num_warps} if _INTERPRET else {}),
    )  # fmt: skip


def _launch_backward(
    grad_h: torch.Tensor | None,
    grad_out: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor | None,
    gate: torch.Tensor | None,
    scale: torch.Tensor,
    grad_x: torch.Tensor,
    grad_y: torch.Tensor | None,
    eps: float,
) -> list[torch.Tensor]:
    """Fill grad_x (and grad_y when gated); return the frame-sums, each (B, T, D) in h's dtype, in the
    order grad_shift, grad_scale[, grad_gate]."""
    B, S, D = h.shape
    T = scale.shape[1]
    L = S // T
    gated = grad_h is not None
    n_acc = 3 if gated else 2
    if B * S == 0:
        return [torch.zeros((B, T, D), dtype=h.dtype, device=h.device) for _ in range(n_acc)]
    frames = B * T
    n_chunks = _num_chunks(frames, L, h.device)
    rows_per_chunk = triton.cdiv(L, n_chunks)
    # Re-derived so that no chunk starts past its frame's end (it would only add zeros, in a wasted program).
    n_chunks = triton.cdiv(L, rows_per_chunk)
    ws = empty_output((n_acc, frames, n_chunks, D), h, torch.float32)
    gh = grad_h if grad_h is not None else grad_out
    y_ = y if y is not None else h
    gate_ = gate if gate is not None else scale
    block_d, rows, num_warps = _tile(D, backward=True)
    _adaln_bwd_kernel[(frames, n_chunks)](
        gh, grad_out, h, y_, gate_, scale, grad_x, grad_y if grad_y is not None else grad_x, ws,
        gh.stride(0), gh.stride(1), grad_out.stride(0), grad_out.stride(1),
        h.stride(0), h.stride(1), y_.stride(0), y_.stride(1),
        gate_.stride(0), gate_.stride(1), scale.stride(0), scale.stride(1),
        S, T, L, D, rows_per_chunk, eps,
        GATED=gated, ROWS=rows, BLOCK_D=block_d, num_warps=num_warps,
        # No fused multiply-adds: contracting g = grad_out * (1 + scale) into g - mean(g) leaves the
        # product's rounding error where the reference has an exact 0 (a row of one channel, or any
        # constant row), and rstd = 1/sqrt(eps) then scales it up to 1e-4 of g (seen on an H100).
        enable_fp_fusion=False,
    )  # fmt: skip
    # Summing the chunks in torch, in a fixed order, keeps the result deterministic without atomics.
    # One sum per accumulator: the op's outputs must not share storage.
    return [partials.sum(1).view(B, T, D).to(h.dtype) for partials in ws]


def adaln_modulate_forward(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float
) -> torch.Tensor:
    """LayerNorm(x) without affine, then ``x_hat * (1 + scale) + shift``; (B, S, D), contiguous."""
    out = empty_output(x.shape, x)
    _launch_forward(x, None, None, shift, scale, None, out, eps)
    return out


def adaln_modulate_backward(
    grad_out: torch.Tensor, x: torch.Tensor, scale: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x (B, S, D), grad_shift (B, T, D), grad_scale (B, T, D)); statistics recomputed from x."""
    grad_x = empty_output(x.shape, x)
    sums = _launch_backward(None, grad_out, x, None, None, scale, grad_x, None, eps)
    return grad_x, sums[0], sums[1]


def gated_residual_adaln_forward(
    x: torch.Tensor,
    y: torch.Tensor,
    gate: torch.Tensor,
    shift: torch.Tensor,
    scale: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, out): ``h = x + gate * y`` and ``adaln_modulate(h, shift, scale)`` of the unrounded h."""
    h, out = empty_output(x.shape, x), empty_output(x.shape, x)
    _launch_forward(x, y, gate, shift, scale, h, out, eps)
    return h, out


def gated_residual_adaln_backward(
    grad_h: torch.Tensor,
    grad_out: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor,
    gate: torch.Tensor,
    scale: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(grad_x, grad_y, grad_gate, grad_shift, grad_scale), statistics recomputed from the stored h."""
    grad_x, grad_y = empty_output(h.shape, h), empty_output(h.shape, h)
    sums = _launch_backward(grad_h, grad_out, h, y, gate, scale, grad_x, grad_y, eps)
    return grad_x, grad_y, sums[2], sums[0], sums[1]
