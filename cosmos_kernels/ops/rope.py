"""The RoPE tables of Cosmos-1.0's 3D rotary position embedding, for ``attention`` and ``qk_norm_rope``."""

import torch

from cosmos_kernels.checks import check_int, check_number

Tensor = torch.Tensor


def _axis_freqs(dim: int, theta: float, extrapolation: float, device: torch.device | None) -> Tensor:
    """The dim/2 frequencies of one axis's part of the head dim, as Cosmos computes them in float32."""
    # NTK-aware scaling: the base grows so that the lowest frequency stretches by the extrapolation
    # ratio while the highest stays put.
    axis_theta = theta * extrapolation ** (dim / (dim - 2))
    return 1.0 / axis_theta ** (torch.arange(0, dim, 2, device=device).float() / dim)


def rope3d_cos_sin(
    t: int,
    h: int,
    w: int,
    head_dim: int,
    *,
    theta: float = 10000.0,
    t_extrapolation: float = 1.0,
    h_extrapolation: float = 1.0,
    w_extrapolation: float = 1.0,
    fps: float | None = None,
    base_fps: float = 24.0,
    offsets: tuple[int, int, int] = (0, 0, 0),
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """The RoPE tables of Cosmos-1.0's ``VideoRopePosition3DEmb`` for a (t, h, w) grid of tokens.

    The head dim splits into a height and a width part of ``head_dim // 6 * 2`` dims each and a
    temporal part of the rest (128 -> t 44, h 42, w 42). Each half of the rotated dims holds the
    axes' frequencies laid out [t | h | w] (22, 21, 21 for 128); Cosmos's angle vector over the full
    head dim is that half repeated twice, which rotate-half RoPE reads as one (D/2) table. Per axis of
    part size d, the base is ``theta * extrapolation ** (d / (d - 2))`` and the frequencies are
    ``base ** -(arange(0, d, 2) / d)``. Positions are integer grid indices plus ``offsets`` (t0, h0,
    w0), e.g. the first frame of a context-parallel shard; temporal positions are multiplied by
    ``base_fps / fps`` when ``fps`` is given (video), not when it is None (images).

    Returns:
        (cos, sin), each (t*h*w, head_dim // 2) float32, tokens in (t, h, w) row-major order.
    """
    op = "rope3d_cos_sin"
    for name, size in (("t", t), ("h", h), ("w", w)):
        check_int(op, name, size, 1)
    # Below 12 an axis part would have 2 dims or fewer and its NTK exponent d / (d - 2) is undefined.
    check_int(op, "head_dim", head_dim, 12)
    if head_dim % 2:
        raise ValueError(f"{op}: head_dim must be even for rotate-half RoPE, got {head_dim}")
    theta = check_number(op, "theta", theta, positive=True)
    ratios = [
        check_number(op, name, value, positive=True)
        for name, value in (
            ("t_extrapolation", t_extrapolation),
            ("h_extrapolation", h_extrapolation),
            ("w_extrapolation", w_extrapolation),
        )
    ]
    base_fps = check_number(op, "base_fps", base_fps, positive=True)
    if fps is not None:
        fps = check_number(op, "fps", fps, positive=True)
    if not isinstance(offsets, tuple | list) or len(offsets) != 3:
        raise ValueError(f"{op}: offsets must be a tuple of three ints (t0, h0, w0), got {offsets!r}")
    for name, offset in zip(("offsets[0]", "offsets[1]", "offsets[2]"), offsets, strict=True):
        check_int(op, name, offset, 0)

    dim_h = head_dim // 6 * 2
    dim_t = head_dim - 2 * dim_h
    positions = [
        torch.arange(size, device=device).float() + offset
        for size, offset in zip((t, h, w), offsets, strict=True)
    ]
    if fps is not None:
        # Divided by a float32 fps, then times base_fps, in that order, as Cosmos does.
        positions[0] = positions[0] / torch.tensor(fps, device=device) * base_fps
    angles = [
        torch.outer(pos, _axis_freqs(dim, theta, ratio, device))
        for pos, dim, ratio in zip(positions, (dim_t, dim_h, dim_h), ratios, strict=True)
    ]
    angles_t, angles_h, angles_w = angles
    grid = torch.cat(
        [
            angles_t[:, None, None, :].expand(t, h, w, -1),
            angles_h[None, :, None, :].expand(t, h, w, -1),
            angles_w[None, None, :, :].expand(t, h, w, -1),
        ],
        dim=-1,
    ).reshape(t * h * w, head_dim // 2)
    return grid.cos(), grid.sin()
