"""Finite scalar quantization (FSQ), the quantizer of Cosmos's discrete tokenizers (DV, DI).

Cosmos Tokenizer's ``FSQuantizer`` (``cosmos_tokenizer/modules/quantizers.py``; the same code in
cosmos-predict1's ``autoregressive/tokenizer/quantizers.py``), see docs/COSMOS.md Part 2 section 2.4.
Each of the d channels is squashed into a bounded range and rounded to one of ``levels[i]`` values,
so a code is a point of the grid {-L//2 .. (L-1)//2} / (L//2) per channel and its index the mixed-radix
number of those values: with levels (8, 8, 8, 5, 5, 5) there are 8^3 * 5^3 = 64,000 codes, indices
0 .. 63,999, with basis (1, 8, 64, 512, 2560, 12800).

Unlike Cosmos, which works on channels-last tensors, everything here takes channels on dim 1:
codes (B, d, ...) and indices (B, ...). The quantizer has no learnable parameters; its constants are
non-persistent buffers, as in Cosmos (whose TorchScript files still list them).
"""

import torch
from torch import nn

from cosmos_kernels.checks import check_int

Tensor = torch.Tensor
BOUND_EPS = 1e-3  # Cosmos's ``bound(z, eps=1e-3)``: keeps the extreme levels reachable after rounding


class FSQuantizer(nn.Module):
    """FSQ over ``len(levels)`` channels (dim 1) with ``levels[i]`` values in channel i.

    ``forward(z)`` returns (indices, codes) with a straight-through round, so gradients reach ``z``
    through ``codes`` as if rounding were the identity (Cosmos's ``round_ste``).
    """

    def __init__(self, levels: tuple[int, ...] | list[int]) -> None:
        super().__init__()
        if not isinstance(levels, tuple | list) or not levels:
            raise TypeError(f"FSQuantizer: levels must be a non-empty list of ints, got {levels!r}")
        for i, level in enumerate(levels):
            check_int("FSQuantizer", f"levels[{i}]", level, 2)
        basis = [1]
        for level in levels[:-1]:
            basis.append(basis[-1] * level)
        if basis[-1] * levels[-1] > 2**31 - 1:
            raise ValueError(f"FSQuantizer: levels {list(levels)} give more codes than int32 indices hold")
        self.levels = tuple(levels)
        self.basis = tuple(basis)
        self.codebook_size = basis[-1] * levels[-1]
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int32), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int32), persistent=False)

    @property
    def dim(self) -> int:
        """Channels of a code (6 for Cosmos's levels)."""
        return len(self.levels)

    def codebook(self) -> Tensor:
        """All codes in index order, (codebook_size, d) float32: Cosmos's ``implicit_codebook``."""
        indices = torch.arange(self.codebook_size, device=self._levels.device)
        return self.indices_to_codes(indices[None]).squeeze(0).T

    def _per_channel(self, t: Tensor, ndim: int) -> Tensor:
        """A (d,) constant shaped to broadcast over (B, d, ...) of ``ndim`` dims."""
        return t.view(-1, *([1] * (ndim - 2)))

    def bound(self, z: Tensor) -> Tensor:
        """``tanh(z + shift) * half_l - offset`` with half_l = (L - 1)(1 + eps) / 2, offset 0.5 for
        even L (0 for odd) and shift = atanh(offset / half_l): after rounding, L values per channel."""
        levels = self._per_channel(self._levels, z.dim()).float()
        half_l = (levels - 1) * (1 + BOUND_EPS) / 2
        offset = torch.where(self._per_channel(self._levels, z.dim()) % 2 == 0, 0.5, 0.0)
        shift = (offset / half_l).atanh()
        return (z + shift).tanh() * half_l - offset

    def quantize(self, z: Tensor) -> Tensor:
        """Codes (B, d, ...) for ``z`` (B, d, ...): bound, round (straight through), then divide by
        L // 2, so channel values lie in [-1, 1]. Computed in float32 (as Cosmos's float32 constants
        promote a bfloat16 input), returned in ``z``'s dtype, which holds every code exactly."""
        self._check_codes("quantize", "z", z, floating=True)
        bounded = self.bound(z.float())
        rounded = bounded + (bounded.round() - bounded).detach()
        half_width = self._per_channel(self._levels // 2, z.dim())
        return (rounded / half_width).to(z.dtype)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """int32 indices (B, ...) of codes (B, d, ...): sum over channels of (code * (L//2) + L//2)
        times the basis. Rounds the grid position first, so codes a dtype cast moved by less than
        half a step still give their index (Cosmos truncates; on exact codes the two agree)."""
        self._check_codes("codes_to_indices", "codes", codes, floating=True)
        half_width = self._per_channel(self._levels // 2, codes.dim())
        digits = (codes.float() * half_width + half_width).round()
        return (digits * self._per_channel(self._basis, codes.dim())).sum(1).to(torch.int32)

    def indices_to_codes(self, indices: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Codes (B, d, ...) in ``dtype`` for integer indices (B, ...) in [0, codebook_size):
        ((index // basis) % L - L//2) / (L//2) per channel. Indices outside the range are an error."""
        if not isinstance(indices, Tensor) or indices.dtype.is_floating_point or indices.dtype == torch.bool:
            kind = indices.dtype if isinstance(indices, Tensor) else type(indices).__name__
            raise TypeError(f"indices_to_codes: indices must be an integer tensor, got {kind}")
        if indices.numel() and indices.device.type != "meta":
            low, high = indices.min().item(), indices.max().item()
            if low < 0 or high >= self.codebook_size:
                raise ValueError(
                    f"indices_to_codes: indices must lie in [0, {self.codebook_size}) for levels "
                    f"{list(self.levels)}, got values from {low} to {high}"
                )
        idx = indices.long().unsqueeze(1)
        ndim = idx.dim()
        levels = self._per_channel(self._levels, ndim)
        digits = idx // self._per_channel(self._basis, ndim) % levels
        half_width = levels // 2
        return ((digits - half_width) / half_width).to(dtype)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(indices (B, ...) int32, codes (B, d, ...)) of ``z`` (B, d, ...)."""
        codes = self.quantize(z)
        return self.codes_to_indices(codes), codes

    def _check_codes(self, op: str, name: str, t: Tensor, floating: bool) -> None:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        if floating and not t.dtype.is_floating_point:
            raise TypeError(f"{op}: {name} must be a floating-point tensor, got {t.dtype}")
        if t.dim() < 2 or t.shape[1] != self.dim:
            raise ValueError(
                f"{op}: {name} must be (B, {self.dim}, ...) with one channel per level "
                f"{list(self.levels)}, got shape {tuple(t.shape)}"
            )
