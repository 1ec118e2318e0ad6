"""Causal 3D layers of the Cosmos continuous video tokenizer (CV8x8x8, CV4x8x8).

No layer lets an output frame see a later input frame: convolutions pad the past by repeating the
first frame, norms work frame by frame, temporal attention is causally masked. Class and attribute
names are Cosmos Tokenizer's (``cosmos_tokenizer/modules/layers3d.py``), so parameter names come out
as its checkpoint keys (``...conv1.0.conv3d.weight``, ``...norm1.norm.weight``).

Streaming: every layer takes an optional :class:`StreamState`. Without one, the input is the whole
video. With one, the input is the next chunk of a video fed chunk by chunk; the layers whose output
frame depends on earlier frames (temporal convs, temporal attention, the Haar transforms and the
temporal resamplers' frame phase) read what the previous chunk left in the state and leave their
own context for the next, so the concatenated outputs equal the whole-video output.
"""

import math
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from cosmos_kernels import ops
from cosmos_kernels.checks import check_power_of_two

Tensor = torch.Tensor


class StreamState:
    """The causal context a video's chunks pass on, one entry per layer that needs any.

    ``first`` says whether the chunk being run is the video's first (the one that holds frame 0,
    where layers pad the past with frame 0 as on a whole video); the caller clears it after running
    the first chunk through the whole network. Layers store their context under themselves.
    """

    def __init__(self) -> None:
        self.first = True
        self._context: dict[nn.Module, Any] = {}

    def take(self, layer: nn.Module) -> Any:
        """What ``layer`` kept from the previous chunk."""
        return self._context[layer]

    def keep(self, layer: nn.Module, context: Any) -> None:
        """Store ``layer``'s context for the next chunk."""
        self._context[layer] = context


def is_first_chunk(state: StreamState | None) -> bool:
    """Whether the input starts at frame 0: a whole video (no state) or a stream's first chunk."""
    return state is None or state.first


class StreamSequential(nn.Sequential):
    """``nn.Sequential`` (same state-dict keys) that hands the stream state to each layer."""

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        for layer in self:
            x = layer(x, state)
        return x


def _pad_past(x: Tensor, frames: int) -> Tensor:
    """Prepend ``frames`` copies of frame 0: the causal stand-in for the frames before the video."""
    # Not F.pad(mode="replicate"): after the upsampler's repeat-and-slice, inductor (torch 2.13) fails
    # to compile that pad ("vr must not be None"); concatenating the expanded frame compiles.
    return torch.cat([x[:, :, :1].expand(-1, -1, frames, -1, -1), x], dim=2)


def _pair_mean(x: Tensor, dim: int) -> Tensor:
    """Mean of consecutive pairs along ``dim`` (even length): average pooling by 2, in any dtype."""
    return x.unflatten(dim, (-1, 2)).mean(dim + 1)


def haar_levels(patch_size: int) -> int:
    """Haar levels of a patch size: Cosmos's patchers take patch sizes 2, 4, 8, ... as log2 levels."""
    return int(math.log2(check_power_of_two("haar_levels", "patch_size", patch_size, 2)))


class CausalConv3d(nn.Module):
    """``nn.Conv3d`` (as ``.conv3d``) whose output frame t depends only on input frames <= t.

    The past is padded with ``kernel_t - time_stride`` copies of frame 0, so a kernel-3 conv keeps
    T frames and a kernel-3, stride-2 conv maps 1 + 2k frames to 1 + k; height and width get
    ``padding`` zeros on each side. Streaming, a later chunk is prepended with the last
    ``kernel_t - time_stride`` (padded) input frames of the chunk before instead.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int, int],
        *,
        stride: int = 1,
        time_stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        kt, kh, kw = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"CausalConv3d: height and width kernel sizes must be odd, got {kernel_size}")
        if time_stride > kt:
            raise ValueError(
                f"CausalConv3d: time_stride ({time_stride}) must not exceed the time kernel {kt}"
            )
        self.time_pad = kt - time_stride
        self.conv3d = nn.Conv3d(
            in_channels,
            out_channels,
            (kt, kh, kw),
            stride=(time_stride, stride, stride),
            padding=(0, padding, padding),
        )

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        if self.time_pad:
            if is_first_chunk(state):
                x = _pad_past(x, self.time_pad)
            else:
                x = torch.cat([state.take(self), x], dim=2)
            if state is not None:
                # A copy, not a view: a view would keep the whole chunk alive until the next one.
                state.keep(self, x[:, :, -self.time_pad :].clone())
        return self.conv3d(x)


def factorized_causal_conv3d(in_channels: int, out_channels: int) -> StreamSequential:
    """Cosmos's 3x3x3 causal conv, factorized: spatial (1, 3, 3) as ``0``, temporal (3, 1, 1) as ``1``."""
    return StreamSequential(
        CausalConv3d(in_channels, out_channels, (1, 3, 3), padding=1),
        CausalConv3d(out_channels, out_channels, (3, 1, 1)),
    )


def fused_group_norm(norm: nn.GroupNorm, x: Tensor, *, silu: bool) -> Tensor:
    """``norm``'s GroupNorm of x (each frame alone when x is video), then SiLU when ``silu``, in one op.

    The affine is cast to x's dtype: under autocast the activations are bfloat16 while the
    parameters stay float32, and the op takes one dtype (its math is float32 either way).
    """
    weight, bias = norm.weight.to(x.dtype), norm.bias.to(x.dtype)
    return ops.group_norm_silu(x, weight, bias, num_groups=norm.num_groups, eps=norm.eps, silu=silu)


class CausalNormalize(nn.Module):
    """GroupNorm(1 group, eps 1e-6) as ``.norm``, applied to each frame alone; optionally SiLU after.

    One group over (C, H, W) of a single frame is a per-frame LayerNorm: statistics never mix frames,
    so normalizing keeps the network causal. (Cosmos's ``num_groups != 1`` variant normalizes over
    time too; the factorized tokenizers never use it.) Hence nothing to carry across chunks.
    ``ops.group_norm_silu`` normalizes the (B, C, T, H, W) layout in place of ``nn.GroupNorm`` on a
    ``(b t) c h w`` copy, and fuses the SiLU that the residual blocks apply next.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, channels, eps=1e-6, affine=True)

    def forward(self, x: Tensor, state: StreamState | None = None, silu: bool = False) -> Tensor:
        return fused_group_norm(self.norm, x, silu=silu)


class CausalResnetBlockFactorized3d(nn.Module):
    """norm, SiLU, factorized conv, norm, SiLU, dropout, factorized conv; plus a 1x1x1 shortcut
    (``nin_shortcut``) when the channel count changes."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = CausalNormalize(in_channels)
        self.conv1 = factorized_causal_conv3d(in_channels, out_channels)
        self.norm2 = CausalNormalize(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = factorized_causal_conv3d(out_channels, out_channels)
        self.nin_shortcut = (
            CausalConv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        h = self.conv1(self.norm1(x, silu=True), state)
        h = self.conv2(self.dropout(self.norm2(h, silu=True)), state)
        # The shortcut is 1x1x1 (or the identity): it never looks at another frame.
        return self.nin_shortcut(x) + h


class CausalHybridDownsample3d(nn.Module):
    """Halve H, W and/or T: a strided conv plus average pooling, then a 1x1x1 conv.

    Cosmos creates all three convs whatever the flags, and checkpoints carry their weights; a conv
    whose flag is off never runs (see :meth:`inert_convs`), and with both flags off the module is the
    identity. Spatial: zero-pad right and bottom by one for ``conv1`` (1x3x3, stride 2), plus the mean
    of each 2x2 block (Cosmos's average pool, whose floor drops the padding).
    Temporal: repeat frame 0 once more, then ``conv2`` (3x1x1, time stride 2) + mean of frame pairs,
    mapping 1 + 2k frames to 1 + k (frame 0 stays alone). A later chunk of 2m frames starts on a
    pair boundary (it follows 1 + 2k frames), so it gets no extra frame and maps to m frames.
    """

    def __init__(self, channels: int, *, spatial_down: bool, temporal_down: bool) -> None:
        super().__init__()
        self.spatial_down = spatial_down
        self.temporal_down = temporal_down
        self.conv1 = CausalConv3d(channels, channels, (1, 3, 3), stride=2)
        self.conv2 = CausalConv3d(channels, channels, (3, 1, 1), time_stride=2)
        self.conv3 = CausalConv3d(channels, channels, 1)

    def inert_convs(self) -> list[str]:
        """Names of the convs this instance never runs."""
        used = {"conv1": self.spatial_down, "conv2": self.temporal_down}
        used["conv3"] = self.spatial_down or self.temporal_down
        return [name for name, runs in used.items() if not runs]

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        if not (self.spatial_down or self.temporal_down):
            return x
        if self.spatial_down:
            x = self.conv1(F.pad(x, (0, 1, 0, 1))) + _pair_mean(_pair_mean(x, 3), 4)
        if self.temporal_down:
            if is_first_chunk(state):
                x = _pad_past(x, 1)
            x = self.conv2(x, state) + _pair_mean(x, 2)
        return self.conv3(x)


class CausalHybridUpsample3d(nn.Module):
    """Double T and/or H, W by repetition, each followed by a residual conv, then a 1x1x1 conv.

    Temporal: every frame but frame 0 is repeated (1 + k frames -> 1 + 2k, the inverse of the
    downsampler's frame count), then ``x + conv1(x)`` with a causal 3x1x1 conv. Spatial: nearest 2x,
    then ``x + conv2(x)`` with a 1x3x3 conv. Like the downsampler, all convs exist whatever the flags.
    Streaming, a later chunk's frames are all repeated (m frames -> 2m): only frame 0 stands alone.
    """

    def __init__(self, channels: int, *, spatial_up: bool, temporal_up: bool) -> None:
        super().__init__()
        self.spatial_up = spatial_up
        self.temporal_up = temporal_up
        self.conv1 = CausalConv3d(channels, channels, (3, 1, 1))
        self.conv2 = CausalConv3d(channels, channels, (1, 3, 3), padding=1)
        self.conv3 = CausalConv3d(channels, channels, 1)

    def inert_convs(self) -> list[str]:
        """Names of the convs this instance never runs."""
        used = {"conv1": self.temporal_up, "conv2": self.spatial_up}
        used["conv3"] = self.spatial_up or self.temporal_up
        return [name for name, runs in used.items() if not runs]

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        if not (self.spatial_up or self.temporal_up):
            return x
        if self.temporal_up:
            x = x.repeat_interleave(2, dim=2)
            if is_first_chunk(state):
                x = x[:, :, 1:]
            x = self.conv1(x, state) + x
        if self.spatial_up:
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest")
            x = self.conv2(x) + x
        return self.conv3(x)


class _CausalAttention(nn.Module):
    """Single-head attention with 1x1x1 q/k/v/out projections, pre-norm and a residual.

    Subclasses say which positions form a sequence (``tokens``, an einops pattern) and whether the
    sequence is causally masked. The softmax scale is SDPA's default, channels**-0.5, as in Cosmos.
    A causal sequence runs along time: streaming, its keys and values are kept in the state and
    each chunk's queries attend to those of all earlier chunks and to their own, causally.
    """

    tokens: str
    is_causal: bool

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = CausalNormalize(channels)
        self.q = CausalConv3d(channels, channels, 1)
        self.k = CausalConv3d(channels, channels, 1)
        self.v = CausalConv3d(channels, channels, 1)
        self.proj_out = CausalConv3d(channels, channels, 1)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        h = self.norm(x)
        b, _, _, height, _ = x.shape
        q, k, v = (rearrange(p(h), f"b c t h w -> {self.tokens}") for p in (self.q, self.k, self.v))
        mask = None
        if self.is_causal and state is not None:
            if not state.first:
                past_k, past_v = state.take(self)
                k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
            state.keep(self, (k, v))
            # Query i is frame (past + i) of the video: it sees keys 0 .. past + i.
            past = k.shape[2] - q.shape[2]
            mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril(past)
        is_causal = self.is_causal and mask is None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        out = rearrange(out, f"{self.tokens} -> b c t h w", b=b, h=height)
        return x + self.proj_out(out)


class CausalAttnBlock(_CausalAttention):
    """Attention among the H*W positions of each frame; frames never see each other."""

    tokens = "(b t) 1 (h w) c"
    is_causal = False


class CausalTemporalAttnBlock(_CausalAttention):
    """Attention along time at each position, masked so a frame sees itself and earlier frames.

    Streaming keeps the keys and values of every frame seen so far at every position, 2 * C * H * W
    values per frame at this layer's resolution: the one part of a stream's memory that grows with
    the video's length. The tokenizers put this block at the latent resolution only, where frames
    are few (16 for 121 frames at 8x temporal compression) and small next to one chunk's full
    resolution activations.
    """

    tokens = "(b h w) 1 t c"
    is_causal = True


class Patcher3d(nn.Module):
    """Cosmos's ``Patcher3D`` ("haar"): log2(patch_size) causal, rescaled 3D Haar levels.

    (B, C, 1 + p*k, H, W) -> (B, C * p**3, 1 + k, H/p, W/p) for patch size p. Holds no weights or
    buffers: the wavelet is built into ``ops.haar3d_analysis``. The causal transform is the plain one
    on the video with frame 0 repeated in front, so a later chunk of p*m frames, which starts on a
    pair boundary at every level, takes the plain (non-causal) transform: p*m frames -> m.
    """

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.levels = haar_levels(patch_size)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        return ops.haar3d_analysis(x, levels=self.levels, causal=is_first_chunk(state), rescale=True)


class UnPatcher3d(nn.Module):
    """Cosmos's ``UnPatcher3D`` ("haar"): the exact inverse of :class:`Patcher3d`, chunk for chunk."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.levels = haar_levels(patch_size)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        return ops.haar3d_synthesis(x, levels=self.levels, causal=is_first_chunk(state), rescale=True)
