"""One level of the 3D and 2D Haar wavelet packet transforms, as Triton kernels and their launchers.

Spec: ``cosmos_kernels/reference/haar.py``. ``cosmos_kernels.ops`` loops over levels, scales, and gets
backward passes as adjoints: analysis with ``zero_front`` is the adjoint of synthesis without
``sum_front`` and synthesis with ``sum_front`` is the adjoint of analysis without ``zero_front``.

Two kernels serve both transforms; 2D is 3D with one frame and no time butterfly (``HAS_TIME=False``),
and the band order is a constexpr stride per letter: (time, height, width) = (4, 2, 1) for 3D's
LLL..HHH, (0, 1, 2) for 2D's width-first LL, LH, HL, HH.

Tiling: a program owns one (batch, channel, output frame) and a ``BLOCK_H x BLOCK_W`` tile of output
(h, w). Each input row it touches is loaded as one contiguous ``2 * BLOCK_W`` run and split into
even/odd columns in registers (``reshape`` + ``split``), so loads vectorise to 16 bytes instead of the
2-4 bytes that stride-2 loads would give; synthesis interleaves with ``join`` + ``reshape`` likewise.
Every input element is read once and every output element written once (bar the causal first frame,
which analysis reads once per repeated pair), which is what a bandwidth-bound op can do best.

The causal frame repeat never materialises: analysis reads virtual frame ``tv`` from input frame
``max(tv - front, 0)`` (or reads zeros for ``tv < front`` with ``zero_front``); synthesis drops the
first ``front`` virtual frames or, with ``sum_front``, folds them into output frame 0.

The launchers trust ``cosmos_kernels.ops`` for the input contract (contiguous, float32/float16/bfloat16,
even spatial sizes) and only re-check what would otherwise index out of bounds.
"""

import torch
import triton
import triton.language as tl

from cosmos_kernels._alloc import empty_output

# Output elements per band per program. Analysis then reads and writes 8 * 1024 elements per program
# (16 KiB each way in bf16), enough bytes in flight per SM to reach copy bandwidth, and few enough
# registers (32 fp32 inputs + 32 outputs a thread at 8 warps, ~52 registers) not to limit occupancy.
_TILE_3D = 1024
_TILE_2D = 2048
_MAX_BLOCK_W = 128
_MAX_WARPS = 8
# Warps follow the tile so that each thread keeps >= 4 outputs per band: 8-byte bf16 stores and 16-byte
# input loads. A fixed 8 warps on the 256-wide tiles of deep levels would drop to 2-byte accesses.
_OUTPUTS_PER_THREAD = 4

# Band-index stride of each letter (time, height, width): band = bt * BAND_T + bh * BAND_H + bw * BAND_W.
_BANDS_3D = (4, 2, 1)
_BANDS_2D = (0, 1, 2)


@triton.jit
def _analyze_row(row_ptr, cols, mask, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Width butterfly of a [BLOCK_H, 2 * BLOCK_W] run of input rows -> (low, high) [BLOCK_H, BLOCK_W]."""
    run = tl.load(row_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    even, odd = tl.split(tl.reshape(run, (BLOCK_H, BLOCK_W, 2)))
    return even + odd, even - odd


@triton.jit
def _analyze_frame(frame_ptr, rows0, rows1, cols, mask, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Height and width butterflies of one frame -> bands (bh, bw) = (0, 0), (0, 1), (1, 0), (1, 1)."""
    l0, h0 = _analyze_row(frame_ptr + rows0, cols, mask, BLOCK_H, BLOCK_W)
    l1, h1 = _analyze_row(frame_ptr + rows1, cols, mask, BLOCK_H, BLOCK_W)
    return l0 + l1, h0 + h1, l0 - l1, h0 - h1


@triton.jit
def _store_band(
    band_ptr, offs, mask, val, coeff,
    BT: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    BAND_T: tl.constexpr, BAND_H: tl.constexpr, BAND_W: tl.constexpr, band_stride,
):  # fmt: skip
    band = BT * BAND_T + BH * BAND_H + BW * BAND_W
    ptr = band_ptr + band * band_stride + offs
    tl.store(ptr, (val * coeff).to(band_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _program_tile(C, T2, n_tiles_h, n_tiles_w, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """(batch * C + channel, t, output rows h, output columns w, pixel columns) of this program's tile."""
    pid = tl.program_id(0)
    tile_w = pid % n_tiles_w
    rest = pid // n_tiles_w
    tile_h = rest % n_tiles_h
    rest = rest // n_tiles_h
    t = rest % T2
    bc = rest // T2
    h = tile_h * BLOCK_H + tl.arange(0, BLOCK_H)
    w = tile_w * BLOCK_W + tl.arange(0, BLOCK_W)
    cols = tile_w * 2 * BLOCK_W + tl.arange(0, 2 * BLOCK_W)
    return bc, t, h, w, cols


@triton.jit
def _haar_analysis_kernel(
    x_ptr, y_ptr, coeff,
    C, T, W, T2, H2, W2, front, n_tiles_h, n_tiles_w,
    HAS_TIME: tl.constexpr, ZERO_FRONT: tl.constexpr,
    BAND_T: tl.constexpr, BAND_H: tl.constexpr, BAND_W: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    # One flat grid axis, w tiles fastest: axes 1 and 2 stop at 65535, and neighbouring programs then
    # stream neighbouring rows.
    bc, t, h, w, cols = _program_tile(C, T2, n_tiles_h, n_tiles_w, BLOCK_H, BLOCK_W)
    b, c = bc // C, bc % C
    h_ok = h < H2
    in_cols = (cols < 2 * W2)[None, :]
    in_mask = h_ok[:, None] & in_cols
    out_mask = h_ok[:, None] & (w < W2)[None, :]
    # int64 row offsets here and for the bands: a single frame may hold more than 2^31 elements.
    rows0 = (2 * h).to(tl.int64)[:, None] * W
    rows1 = rows0 + W
    cols = cols[None, :]

    # tl.cast, not .to: integer arguments equal to 1 arrive as constexprs, which have no .to.
    plane = tl.cast(2 * H2, tl.int64) * W
    x_bc = x_ptr + bc.to(tl.int64) * T * plane
    if HAS_TIME:
        # Virtual frames 2t, 2t+1 of the video with `front` copies (or zeros) prepended.
        tv0 = 2 * t - front
        tv1 = tv0 + 1
        m0 = in_mask
        m1 = in_mask
        if ZERO_FRONT:
            # Zeros for tv < 0 by masking every row off (an integer bound: the interpreter mishandles a
            # scalar bool & a block mask).
            m0 = (h < tl.where(tv0 >= 0, H2, 0))[:, None] & in_cols
            m1 = (h < tl.where(tv1 >= 0, H2, 0))[:, None] & in_cols
        f0 = x_bc + tl.maximum(tv0, 0).to(tl.int64) * plane
        f1 = x_bc + tl.maximum(tv1, 0).to(tl.int64) * plane
        a_ll, a_lh, a_hl, a_hh = _analyze_frame(f0, rows0, rows1, cols, m0, BLOCK_H, BLOCK_W)
        b_ll, b_lh, b_hl, b_hh = _analyze_frame(f1, rows0, rows1, cols, m1, BLOCK_H, BLOCK_W)
    else:
        a_ll, a_lh, a_hl, a_hh = _analyze_frame(x_bc, rows0, rows1, cols, in_mask, BLOCK_H, BLOCK_W)

    # y is (B, NBANDS * C, T2, H2, W2); band k of channel c sits at channel k * C + c.
    NBANDS: tl.constexpr = 8 if HAS_TIME else 4
    out_plane = tl.cast(H2, tl.int64) * W2
    band_stride = out_plane * C * T2
    y_base = y_ptr + (b.to(tl.int64) * NBANDS * C + c) * T2 * out_plane + t * out_plane
    offs = h.to(tl.int64)[:, None] * W2 + w[None, :]
    if HAS_TIME:
        _store_band(y_base, offs, out_mask, a_ll + b_ll, coeff, 0, 0, 0, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_lh + b_lh, coeff, 0, 0, 1, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_hl + b_hl, coeff, 0, 1, 0, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_hh + b_hh, coeff, 0, 1, 1, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_ll - b_ll, coeff, 1, 0, 0, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_lh - b_lh, coeff, 1, 0, 1, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_hl - b_hl, coeff, 1, 1, 0, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_hh - b_hh, coeff, 1, 1, 1, BAND_T, BAND_H, BAND_W, band_stride)
    else:
        _store_band(y_base, offs, out_mask, a_ll, coeff, 0, 0, 0, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_lh, coeff, 0, 0, 1, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_hl, coeff, 0, 1, 0, BAND_T, BAND_H, BAND_W, band_stride)
        _store_band(y_base, offs, out_mask, a_hh, coeff, 0, 1, 1, BAND_T, BAND_H, BAND_W, band_stride)


@triton.jit
def _load_band(
    band_ptr, offs, mask,
    BT: tl.constexpr, BH: tl.constexpr, BW: tl.constexpr,
    BAND_T: tl.constexpr, BAND_H: tl.constexpr, BAND_W: tl.constexpr, band_stride,
):  # fmt: skip
    band = BT * BAND_T + BH * BAND_H + BW * BAND_W
    return tl.load(band_ptr + band * band_stride + offs, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _store_row(row_ptr, cols, mask, low, high, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Inverse width butterfly, interleaved back into a [BLOCK_H, 2 * BLOCK_W] run of output rows."""
    run = tl.reshape(tl.join(low + high, low - high), (BLOCK_H, 2 * BLOCK_W))
    tl.store(row_ptr + cols, run.to(row_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _synthesize_frame(
    frame_ptr, rows0, rows1, cols, mask, ll, lh, hl, hh, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr
):
    """Inverse height and width butterflies of bands (bh, bw) into output rows 2h and 2h + 1."""
    _store_row(frame_ptr + rows0, cols, mask, ll + hl, lh + hh, BLOCK_H, BLOCK_W)
    _store_row(frame_ptr + rows1, cols, mask, ll - hl, lh - hh, BLOCK_H, BLOCK_W)


@triton.jit
def _haar_synthesis_kernel(
    y_ptr, x_ptr, coeff,
    C, T, W, T2, H2, W2, front, n_tiles_h, n_tiles_w,
    HAS_TIME: tl.constexpr, SUM_FRONT: tl.constexpr, FRONT_PAIRS: tl.constexpr,
    BAND_T: tl.constexpr, BAND_H: tl.constexpr, BAND_W: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
):  # fmt: skip
    bc, t, h, w, cols = _program_tile(C, T2, n_tiles_h, n_tiles_w, BLOCK_H, BLOCK_W)
    b, c = bc // C, bc % C
    h_ok = h < H2
    in_cols = (w < W2)[None, :]
    out_cols = (cols < 2 * W2)[None, :]
    in_mask = h_ok[:, None] & in_cols
    out_mask = h_ok[:, None] & out_cols

    NBANDS: tl.constexpr = 8 if HAS_TIME else 4
    in_plane = tl.cast(H2, tl.int64) * W2
    band_stride = in_plane * C * T2
    y_bc = y_ptr + (b.to(tl.int64) * NBANDS * C + c) * T2 * in_plane
    offs = h.to(tl.int64)[:, None] * W2 + w[None, :]

    rows0 = (2 * h).to(tl.int64)[:, None] * W
    rows1 = rows0 + W
    cols = cols[None, :]
    plane = tl.cast(2 * H2, tl.int64) * W
    x_bc = x_ptr + bc.to(tl.int64) * T * plane

    if HAS_TIME:
        # Output frames of virtual frames 2t and 2t+1; those before `front` are dropped (or summed).
        f0 = 2 * t - front
        f1 = f0 + 1
        # f1 >= f0, so programs whose virtual frames are all dropped skip their loads through this mask.
        # Frame conditions become row bounds: the interpreter mishandles a scalar bool & a block mask.
        rows_f0 = tl.where(f0 >= 0, H2, 0)
        rows_f1 = tl.where(f1 >= 0, H2, 0)
        mask1 = (h < rows_f1)[:, None] & in_cols
        y_t = y_bc + t * in_plane
        l_ll = _load_band(y_t, offs, mask1, 0, 0, 0, BAND_T, BAND_H, BAND_W, band_stride)
        l_lh = _load_band(y_t, offs, mask1, 0, 0, 1, BAND_T, BAND_H, BAND_W, band_stride)
        l_hl = _load_band(y_t, offs, mask1, 0, 1, 0, BAND_T, BAND_H, BAND_W, band_stride)
        l_hh = _load_band(y_t, offs, mask1, 0, 1, 1, BAND_T, BAND_H, BAND_W, band_stride)
        h_ll = _load_band(y_t, offs, mask1, 1, 0, 0, BAND_T, BAND_H, BAND_W, band_stride)
        h_lh = _load_band(y_t, offs, mask1, 1, 0, 1, BAND_T, BAND_H, BAND_W, band_stride)
        h_hl = _load_band(y_t, offs, mask1, 1, 1, 0, BAND_T, BAND_H, BAND_W, band_stride)
        h_hh = _load_band(y_t, offs, mask1, 1, 1, 1, BAND_T, BAND_H, BAND_W, band_stride)
        a_ll = (l_ll + h_ll) * coeff
        a_lh = (l_lh + h_lh) * coeff
        a_hl = (l_hl + h_hl) * coeff
        a_hh = (l_hh + h_hh) * coeff
        b_ll = (l_ll - h_ll) * coeff
        b_lh = (l_lh - h_lh) * coeff
        b_hl = (l_hl - h_hl) * coeff
        b_hh = (l_hh - h_hh) * coeff
        if SUM_FRONT:
            # front is odd, so output frame 0 is virtual frame 2t+1 of the program t = FRONT_PAIRS
            # (= front // 2); it takes the sum of virtual frames 0..front. A pair v[2s] + v[2s+1] is
            # 2 * coeff times the inverse spatial butterfly of its time-low bands, so only those are
            # read for s <= t. The trip count is a constexpr (one compile per number of levels)
            # because the 3.6 interpreter warns on a tensor-valued range bound; the other programs
            # run the same loop with their loads masked off.
            first = t == FRONT_PAIRS
            first_mask = (h < tl.where(first, H2, 0))[:, None] & in_cols
            s_ll = l_ll
            s_lh = l_lh
            s_hl = l_hl
            s_hh = l_hh
            for s in range(FRONT_PAIRS):
                y_s = y_bc + s * in_plane
                s_ll += _load_band(y_s, offs, first_mask, 0, 0, 0, BAND_T, BAND_H, BAND_W, band_stride)
                s_lh += _load_band(y_s, offs, first_mask, 0, 0, 1, BAND_T, BAND_H, BAND_W, band_stride)
                s_hl += _load_band(y_s, offs, first_mask, 0, 1, 0, BAND_T, BAND_H, BAND_W, band_stride)
                s_hh += _load_band(y_s, offs, first_mask, 0, 1, 1, BAND_T, BAND_H, BAND_W, band_stride)
            two_coeff = 2.0 * coeff
            b_ll = tl.where(first, s_ll * two_coeff, b_ll)
            b_lh = tl.where(first, s_lh * two_coeff, b_lh)
            b_hl = tl.where(first, s_hl * two_coeff, b_hl)
            b_hh = tl.where(first, s_hh * two_coeff, b_hh)
        x_f0 = x_bc + tl.maximum(f0, 0).to(tl.int64) * plane
        x_f1 = x_bc + f1.to(tl.int64) * plane
        out_mask0 = (h < rows_f0)[:, None] & out_cols
        out_mask1 = (h < rows_f1)[:, None] & out_cols
        _synthesize_frame(x_f0, rows0, rows1, cols, out_mask0, a_ll, a_lh, a_hl, a_hh, BLOCK_H, BLOCK_W)
        _synthesize_frame(x_f1, rows0, rows1, cols, out_mask1, b_ll, b_lh, b_hl, b_hh, BLOCK_H, BLOCK_W)
    else:
        a_ll = _load_band(y_bc, offs, in_mask, 0, 0, 0, BAND_T, BAND_H, BAND_W, band_stride) * coeff
        a_lh = _load_band(y_bc, offs, in_mask, 0, 0, 1, BAND_T, BAND_H, BAND_W, band_stride) * coeff
        a_hl = _load_band(y_bc, offs, in_mask, 0, 1, 0, BAND_T, BAND_H, BAND_W, band_stride) * coeff
        a_hh = _load_band(y_bc, offs, in_mask, 0, 1, 1, BAND_T, BAND_H, BAND_W, band_stride) * coeff
        _synthesize_frame(x_bc, rows0, rows1, cols, out_mask, a_ll, a_lh, a_hl, a_hh, BLOCK_H, BLOCK_W)


def _tile(h2: int, w2: int, tile: int) -> tuple[int, int]:
    """(BLOCK_H, BLOCK_W) output positions per program, the tile that pads (h2, w2) least.

    Deeper levels halve the plane (640 -> 320 -> 160 wide at 1280 pixels), where a fixed 128-wide tile
    would leave up to 3/8 of the lanes masked. Ties go to the largest tile, then the widest rows; tiles
    stay within 4x of ``tile`` (or of the whole plane) so that programs keep enough bytes in flight.
    """
    best: tuple[tuple[int, int, int], int, int] | None = None
    widest = min(_MAX_BLOCK_W, triton.next_power_of_2(w2))
    smallest = min(tile, triton.next_power_of_2(h2) * widest) // 4
    block_w = widest
    while block_w >= min(widest, 16):
        tallest = max(1, min(triton.next_power_of_2(h2), tile // block_w))
        block_h = tallest
        while block_h >= max(1, tallest // 4) and block_h * block_w >= smallest:
            padded = triton.cdiv(h2, block_h) * block_h * triton.cdiv(w2, block_w) * block_w
            key = (padded, -block_h * block_w, -block_w)
            if best is None or key < best[0]:
                best = (key, block_h, block_w)
            block_h //= 2
        block_w //= 2
    assert best is not None  # the loops always run once
    return best[1], best[2]


def _launch(
    kernel: triton.JITFunction,
    src: torch.Tensor,
    dst: torch.Tensor,
    coeff: float,
    C: int,
    T: int,
    T2: int,
    H2: int,
    W2: int,
    front: int,
    has_time: bool,
    **flags: bool | int,
) -> None:
    """Shared launch of either kernel; (C, T) describe the pixel-side tensor, (T2, H2, W2) the bands.

    ``flags`` are the kernel's own constexprs (ZERO_FRONT, or SUM_FRONT and FRONT_PAIRS).
    """
    if dst.numel() == 0 or src.numel() == 0:
        return
    block_h, block_w = _tile(H2, W2, _TILE_3D if has_time else _TILE_2D)
    num_warps = max(1, min(_MAX_WARPS, block_h * block_w // (32 * _OUTPUTS_PER_THREAD)))
    n_tiles_h = triton.cdiv(H2, block_h)
    n_tiles_w = triton.cdiv(W2, block_w)
    n_programs = dst.shape[0] * C * T2 * n_tiles_h * n_tiles_w
    if n_programs >= 2**31:
        raise ValueError(f"tensor too large for one launch ({n_programs} programs of {block_h}x{block_w})")
    band_t, band_h, band_w = _BANDS_3D if has_time else _BANDS_2D
    kernel[(n_programs,)](
        src, dst, coeff,
        C, T, 2 * W2, T2, H2, W2, front, n_tiles_h, n_tiles_w,
        HAS_TIME=has_time, BAND_T=band_t, BAND_H=band_h, BAND_W=band_w,
        BLOCK_H=block_h, BLOCK_W=block_w, num_warps=num_warps,
        **flags,
    )  # fmt: skip


def _check_rank(t: torch.Tensor, name: str, ndim: int) -> None:
    if t.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(t.shape)}")
    if not t.is_contiguous():
        raise ValueError(f"{name} must be contiguous")


def haar3d_analysis_level(x: torch.Tensor, coeff: float, front: int, zero_front: bool) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, 8C, (T + front) // 2, H // 2, W // 2), bands LLL..HHH (time, height, width).

    Virtual frame ``tv`` of ``T + front`` is ``x[tv - front]``, or for ``tv < front`` the first frame
    (``zero_front=False``, the causal repeat) or zeros (``zero_front=True``).
    """
    _check_rank(x, "x", 5)
    B, C, T, H, W = x.shape
    if front < 0 or T < 1 or (T + front) % 2 or H % 2 or W % 2:
        raise ValueError(
            f"need front >= 0, T >= 1, even T + front, H and W; got front={front}, {tuple(x.shape)}"
        )
    T2, H2, W2 = (T + front) // 2, H // 2, W // 2
    y = empty_output((B, 8 * C, T2, H2, W2), x)
    _launch(_haar_analysis_kernel, x, y, coeff, C, T, T2, H2, W2, front, True, ZERO_FRONT=zero_front)
    return y


def haar3d_synthesis_level(y: torch.Tensor, coeff: float, front: int, sum_front: bool) -> torch.Tensor:
    """(B, 8C, T2, H2, W2) -> (B, C, 2 * T2 - front, 2 * H2, 2 * W2), the adjoint of analysis.

    The first ``front`` synthesised frames are dropped, or with ``sum_front=True`` added into frame 0
    (the adjoint of the causal repeat); ``front`` is 0 or odd and below ``2 * T2``.
    """
    _check_rank(y, "y", 5)
    B, C8, T2, H2, W2 = y.shape
    if C8 % 8 or front < 0 or front >= 2 * T2 or (front > 0 and front % 2 == 0):
        raise ValueError(
            f"need 8 | channels and front 0 or odd below 2 * T2; got front={front}, {tuple(y.shape)}"
        )
    C, T = C8 // 8, 2 * T2 - front
    x = empty_output((B, C, T, 2 * H2, 2 * W2), y)
    sum_front = sum_front and front > 0
    pairs = front // 2 if sum_front else 0
    _launch(
        _haar_synthesis_kernel, y, x, coeff, C, T, T2, H2, W2, front, True,
        SUM_FRONT=sum_front, FRONT_PAIRS=pairs,
    )  # fmt: skip
    return x


def haar2d_analysis_level(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C, H // 2, W // 2), bands LL, LH, HL, HH (width letter first)."""
    _check_rank(x, "x", 4)
    B, C, H, W = x.shape
    if H % 2 or W % 2:
        raise ValueError(f"H and W must be even, got {tuple(x.shape)}")
    H2, W2 = H // 2, W // 2
    y = empty_output((B, 4 * C, H2, W2), x)
    _launch(_haar_analysis_kernel, x, y, coeff, C, 1, 1, H2, W2, 0, False, ZERO_FRONT=False)
    return y


def haar2d_synthesis_level(y: torch.Tensor, coeff: float) -> torch.Tensor:
    """(B, 4C, H2, W2) -> (B, C, 2 * H2, 2 * W2), the adjoint of :func:`haar2d_analysis_level`."""
    _check_rank(y, "y", 4)
    B, C4, H2, W2 = y.shape
    if C4 % 4:
        raise ValueError(f"y's channels must be a multiple of 4, got {tuple(y.shape)}")
    C = C4 // 4
    x = empty_output((B, C, 2 * H2, 2 * W2), y)
    _launch(_haar_synthesis_kernel, y, x, coeff, C, 1, 1, H2, W2, 0, False, SUM_FRONT=False, FRONT_PAIRS=0)
    return x
