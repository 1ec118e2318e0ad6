"""The Cosmos tokenizers: continuous video (CV8x8x8, CV4x8x8) and image (CI8x8), and discrete video
(DV8x16x16, DV8x8x8, DV4x8x8) and image (DI8x8, DI16x16).

Pixels in [-1, 1] go through a Haar wavelet patcher (patch_size p: p x p x p in video, p x p in
images), then a conv net that halves space (and time) the remaining times, down to ``latent_channels``;
the decoder mirrors it and ends with the inverse wavelet. The video networks are causal: latent frame
j depends on input frames 0 .. t*j only (t = temporal compression), and output frames likewise on
latent frames at or before theirs.

Module and attribute names are Cosmos Tokenizer's (``networks/continuous_video.py``,
``modules/layers3d.py``, ``modules/layers2d.py``), so ``state_dict()`` keys are the keys of its
checkpoints; see ``tokenizer_checkpoint.py`` for loading them.

Long videos: ``encode`` and ``decode`` stream a video through the causal networks in temporal chunks,
carrying each layer's causal context in a :class:`StreamState` (equal to the whole-video result), and
can split large frames into overlapping spatial tiles blended with linear ramps (an approximation).
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from cosmos_kernels.checks import check_power_of_two
from cosmos_kernels.models._checks import named_config
from cosmos_kernels.nn import (
    AttnBlock,
    CausalAttnBlock,
    CausalConv3d,
    CausalHybridDownsample3d,
    CausalHybridUpsample3d,
    CausalNormalize,
    CausalResnetBlockFactorized3d,
    CausalTemporalAttnBlock,
    Downsample,
    FSQuantizer,
    Patcher,
    Patcher3d,
    ResnetBlock,
    UnPatcher,
    UnPatcher3d,
    Upsample,
    factorized_causal_conv3d,
    group_norm,
    haar_levels,
)
from cosmos_kernels.nn.tokenizer_layers3d import StreamSequential, StreamState, fused_group_norm

Tensor = torch.Tensor
VIDEO, IMAGE = "FACTORIZED", "Default"


def _power_of_two_at_least(name: str, value: int, minimum: int) -> int:
    return int(math.log2(check_power_of_two("TokenizerConfig", name, value, minimum)))


@dataclass(frozen=True)
class TokenizerNetworkConfig:
    """The encoder and decoder networks of a Cosmos tokenizer, in the keys of Cosmos Tokenizer's
    ``networks/configs.py``; :class:`TokenizerConfig` (continuous) and
    :class:`DiscreteTokenizerConfig` add what sits between the two networks.

    Keys that select variants we do not build (``patch_method="rearrange"``, non-factorized 3D
    layers) are checked, not ignored.

    ``decoder_channels_mult`` is ours, not a Cosmos key. None means ``channels_mult``. Cosmos
    Tokenizer's ``CausalContinuousVideoTokenizer`` (as of 3584ae7, and ComfyUI's copy of it) builds
    the Cosmos-0.1 CV4x8x8 decoder with channels_mult (2, 4) whenever ``temporal_compression == 4``,
    while the encoder keeps (2, 4, 4); this field says so explicitly.
    """

    encoder: str = VIDEO  # "FACTORIZED": causal video network; "Default": 2D image network
    decoder: str = VIDEO
    in_channels: int = 3
    out_channels: int = 3
    channels: int = 128
    channels_mult: tuple[int, ...] = (2, 4, 4)  # width of each resolution level, times ``channels``
    num_res_blocks: int = 2  # per encoder level; decoder levels have one more
    attn_resolutions: tuple[int, ...] = (32,)  # levels whose nominal resolution is listed get attention
    dropout: float = 0.0
    resolution: int = 1024  # nominal input size; only places the level attention
    patch_size: int = 4
    patch_method: str = "haar"
    z_channels: int = 16  # encoder output / decoder input
    z_factor: int = 1  # 2 would carry a VAE's mean and log-variance
    spatial_compression: int = 8
    temporal_compression: int = 8  # 1 for images
    num_groups: int = 1  # GroupNorm groups: 1 (per-frame) in video, 32 in Cosmos's image networks
    legacy_mode: bool = False  # older video checkpoints upsample time one decoder level earlier
    decoder_channels_mult: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("channels_mult", "attn_resolutions", "decoder_channels_mult"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))
        if (self.encoder, self.decoder) not in ((VIDEO, VIDEO), (IMAGE, IMAGE)):
            raise ValueError(
                f"{type(self).__name__}: encoder and decoder must both be {VIDEO!r} (causal video) or "
                f"both {IMAGE!r} (image), got {self.encoder!r} and {self.decoder!r}"
            )
        for name, supported in (("patch_method", "haar"), ("z_factor", 1), *self._variants()):
            if getattr(self, name) != supported:
                raise ValueError(
                    f"{type(self).__name__}: only {name}={supported!r} is built (the released "
                    f"tokenizers), got {getattr(self, name)!r}"
                )
        if not self.channels_mult or not self.decoder_mult:
            raise ValueError(
                f"{type(self).__name__}: channels_mult and decoder_channels_mult must not be empty"
            )
        haar_levels(self.patch_size)
        if self.is_video and self.num_groups != 1:
            raise ValueError(
                f"{type(self).__name__}: the factorized video networks normalize each frame with one "
                f"group (Cosmos ignores other values); num_groups must be 1, got {self.num_groups}"
            )
        if not self.is_video:
            if self.temporal_compression != 1 or self.legacy_mode:
                raise ValueError(
                    f"{type(self).__name__}: image tokenizers take temporal_compression=1 and "
                    "legacy_mode=False"
                )
            widths = [self.channels * m for m in (1, *self.channels_mult, *self.decoder_mult)]
            if any(w % self.num_groups for w in widths):
                raise ValueError(
                    f"{type(self).__name__}: every width {sorted(set(widths))} must be divisible by "
                    f"num_groups = {self.num_groups}"
                )
        self._check_resampling()

    def _variants(self) -> tuple[tuple[str, object], ...]:
        """(key, the one value we build) pairs a subclass adds to the checks."""
        return ()

    @property
    def is_video(self) -> bool:
        return self.encoder == VIDEO

    @property
    def decoder_mult(self) -> tuple[int, ...]:
        return self.channels_mult if self.decoder_channels_mult is None else self.decoder_channels_mult

    def network_halvings(self) -> tuple[int, int]:
        """How often the conv net itself halves (space, time): the compression the patcher leaves."""
        patch = int(math.log2(self.patch_size))
        space = _power_of_two_at_least("spatial_compression", self.spatial_compression, self.patch_size)
        if not self.is_video:
            return space - patch, 0
        time = _power_of_two_at_least("temporal_compression", self.temporal_compression, self.patch_size)
        return space - patch, time - patch

    def down_flags(self) -> dict[int, tuple[bool, bool]]:
        """(spatial, temporal) halving of each encoder level that has a ``downsample`` module.

        Cosmos gives every video level but the last one a downsampler, halving space and time at
        the first levels; an image level gets one only where it halves.
        """
        space, time = self.network_halvings()
        levels = len(self.channels_mult)
        if self.is_video:
            return {i: (i < space, i < time) for i in range(levels - 1)}
        return {i: (True, False) for i in range(min(space, levels))}

    def up_flags(self) -> dict[int, tuple[bool, bool]]:
        """(spatial, temporal) doubling of each decoder level (by index) that has an ``upsample``.

        The video rule is Cosmos's ``DecoderFactorized``: counted from the first level to run
        (``rev = 0``), time doubles at ``0 < rev <= time halvings`` (legacy: ``rev < halvings``)
        and space wherever time does, or at ``rev < space halvings`` if space halves more often.
        Images double at the first levels to run.
        """
        space, time = self.network_halvings()
        levels = len(self.decoder_mult)
        if not self.is_video:
            return {i: (True, False) for i in range(max(levels - space, 0), levels)}
        flags = {}
        for i in range(1, levels):
            rev = levels - 1 - i
            temporal = rev < time if self.legacy_mode else 0 < rev < time + 1
            flags[i] = (temporal or (rev < space and space > time), temporal)
        return flags

    def _check_resampling(self) -> None:
        # Cosmos asserts only an upper bound and builds a model of the wrong compression otherwise.
        need = self.network_halvings()
        for part, flags, mult in (
            ("encoder", self.down_flags(), self.channels_mult),
            ("decoder", self.up_flags(), self.decoder_mult),
        ):
            got = tuple(sum(f[axis] for f in flags.values()) for axis in (0, 1))
            if got != need:
                raise ValueError(
                    f"{type(self).__name__}: a {part} with {len(mult)} levels halves space {got[0]} and time "
                    f"{got[1]} times, but patch_size={self.patch_size} with spatial_compression="
                    f"{self.spatial_compression}, temporal_compression={self.temporal_compression} "
                    f"needs {need[0]} and {need[1]}"
                )


@dataclass(frozen=True)
class TokenizerConfig(TokenizerNetworkConfig):
    """A continuous Cosmos tokenizer: the networks plus ``latent_channels`` between the quant convs.

    A Cosmos ``continuous_video`` or ``continuous_image`` dict without its ``name`` entry maps onto
    these fields one to one (the VAE formulation is checked, not built).
    """

    latent_channels: int = 16
    formulation: str = "AE"

    def _variants(self) -> tuple[tuple[str, object], ...]:
        return (("formulation", "AE"),)


@dataclass(frozen=True)
class DiscreteTokenizerConfig(TokenizerNetworkConfig):
    """A discrete Cosmos tokenizer (DV, DI): the networks, a ``quant_conv`` from ``z_channels`` to
    ``embedding_dim`` channels, and FSQ with ``levels`` (one level per embedding channel).

    A Cosmos ``discrete_video`` or ``discrete_image`` dict without its ``name`` maps onto these
    fields one to one (docs/COSMOS.md Part 2, 2.1). ``num_quantizers`` is read only by Cosmos's
    residual FSQ, which no released tokenizer uses; it is accepted and unused.
    """

    spatial_compression: int = 16
    quantizer: str = "FSQ"
    embedding_dim: int = 6
    levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    num_quantizers: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(self.levels))
        super().__post_init__()
        if len(self.levels) != self.embedding_dim:
            raise ValueError(
                f"DiscreteTokenizerConfig: FSQ quantizes each of the embedding_dim = "
                f"{self.embedding_dim} channels with one level, got {len(self.levels)} levels "
                f"{list(self.levels)}"
            )

    def _variants(self) -> tuple[tuple[str, object], ...]:
        return (("quantizer", "FSQ"),)

    @property
    def codebook_size(self) -> int:
        """How many tokens there are: the product of the levels (64,000 for Cosmos's)."""
        return math.prod(self.levels)


class _Level(nn.Module):
    """One resolution level: res blocks (``block``), an attention after each block if the level
    has any (``attn``), then the level's resampler under its Cosmos name, if any."""

    def __init__(
        self,
        blocks: list[nn.Module],
        attn: list[nn.Module],
        resample_name: str,
        resample: nn.Module | None,
    ) -> None:
        super().__init__()
        self.block = nn.ModuleList(blocks)
        self.attn = nn.ModuleList(attn)
        self.resample_name = resample_name if resample is not None else None
        if resample is not None:
            self.add_module(resample_name, resample)

    def forward(self, h: Tensor, state: StreamState | None = None) -> Tensor:
        for i, block in enumerate(self.block):
            h = _run(block, h, state)
            if len(self.attn):
                h = _run(self.attn[i], h, state)
        if self.resample_name is not None:
            h = _run(self.get_submodule(self.resample_name), h, state)
        return h


class _Mid(nn.Module):
    def __init__(self, block_1: nn.Module, attn_1: nn.Module, block_2: nn.Module) -> None:
        super().__init__()
        self.block_1, self.attn_1, self.block_2 = block_1, attn_1, block_2

    def forward(self, h: Tensor, state: StreamState | None = None) -> Tensor:
        for layer in (self.block_1, self.attn_1, self.block_2):
            h = _run(layer, h, state)
        return h


def _run(layer: nn.Module, h: Tensor, state: StreamState | None) -> Tensor:
    """``layer(h)``, handing on the stream state when streaming; the image layers take none."""
    return layer(h) if state is None else layer(h, state)


def _video_attention(channels: int) -> StreamSequential:
    """Per-frame spatial attention, then causal temporal attention (keys ``0.*`` and ``1.*``)."""
    return StreamSequential(CausalAttnBlock(channels), CausalTemporalAttnBlock(channels))


def _blocks(
    make: Callable[[int, int], nn.Module], block_in: int, block_out: int, count: int
) -> list[nn.Module]:
    return [make(block_in if i == 0 else block_out, block_out) for i in range(count)]


class EncoderFactorized(nn.Module):
    """Cosmos's causal video encoder: Haar patcher, factorized causal convs, hybrid downsampling,
    a middle block with spatial and temporal attention, and ``z_channels`` out."""

    def __init__(self, cfg: TokenizerNetworkConfig) -> None:
        super().__init__()

        def resblock(cin: int, cout: int) -> nn.Module:
            return CausalResnetBlockFactorized3d(cin, cout, cfg.dropout)

        self.patcher3d = Patcher3d(cfg.patch_size)
        self.conv_in = factorized_causal_conv3d(cfg.in_channels * cfg.patch_size**3, cfg.channels)
        flags, res, block_in = cfg.down_flags(), cfg.resolution // cfg.patch_size, cfg.channels
        self.down = nn.ModuleList()
        for i, mult in enumerate(cfg.channels_mult):
            block_out = cfg.channels * mult
            blocks = _blocks(resblock, block_in, block_out, cfg.num_res_blocks)
            attn = [_video_attention(block_out) for _ in blocks] if res in cfg.attn_resolutions else []
            downsample = None
            if i in flags:
                spatial, temporal = flags[i]
                downsample = CausalHybridDownsample3d(block_out, spatial_down=spatial, temporal_down=temporal)
                res //= 2
            self.down.append(_Level(blocks, attn, "downsample", downsample))
            block_in = block_out
        self.mid = _Mid(
            resblock(block_in, block_in), _video_attention(block_in), resblock(block_in, block_in)
        )
        self.norm_out = CausalNormalize(block_in)
        self.conv_out = factorized_causal_conv3d(block_in, cfg.z_channels)

    def forward(self, x: Tensor, state: StreamState | None = None) -> Tensor:
        h = self.conv_in(self.patcher3d(x, state), state)
        for level in self.down:
            h = level(h, state)
        return self.conv_out(self.norm_out(self.mid(h, state), silu=True), state)


class DecoderFactorized(nn.Module):
    """Cosmos's causal video decoder: the encoder's mirror, levels run from ``up[-1]`` to ``up[0]``,
    ending in the inverse Haar transform."""

    def __init__(self, cfg: TokenizerNetworkConfig) -> None:
        super().__init__()

        def resblock(cin: int, cout: int) -> nn.Module:
            return CausalResnetBlockFactorized3d(cin, cout, cfg.dropout)

        mult, flags = cfg.decoder_mult, cfg.up_flags()
        block_in = cfg.channels * mult[-1]
        res = cfg.resolution // cfg.patch_size // 2 ** (len(mult) - 1)
        self.conv_in = factorized_causal_conv3d(cfg.z_channels, block_in)
        self.mid = _Mid(
            resblock(block_in, block_in), _video_attention(block_in), resblock(block_in, block_in)
        )
        levels = []
        for i in reversed(range(len(mult))):
            block_out = cfg.channels * mult[i]
            blocks = _blocks(resblock, block_in, block_out, cfg.num_res_blocks + 1)
            attn = [_video_attention(block_out) for _ in blocks] if res in cfg.attn_resolutions else []
            upsample = None
            if i in flags:
                spatial, temporal = flags[i]
                upsample = CausalHybridUpsample3d(block_out, spatial_up=spatial, temporal_up=temporal)
                res *= 2
            levels.insert(0, _Level(blocks, attn, "upsample", upsample))
            block_in = block_out
        self.up = nn.ModuleList(levels)
        self.norm_out = CausalNormalize(block_in)
        self.conv_out = factorized_causal_conv3d(block_in, cfg.out_channels * cfg.patch_size**3)
        self.unpatcher3d = UnPatcher3d(cfg.patch_size)

    def forward(self, z: Tensor, state: StreamState | None = None) -> Tensor:
        h = self.mid(self.conv_in(z, state), state)
        for level in reversed(self.up):
            h = level(h, state)
        return self.unpatcher3d(self.conv_out(self.norm_out(h, silu=True), state), state)


class Encoder(nn.Module):
    """Cosmos's 2D image encoder (``layers2d.Encoder``): Haar patcher, then an LDM-style conv net."""

    def __init__(self, cfg: TokenizerNetworkConfig) -> None:
        super().__init__()
        groups = cfg.num_groups

        def resblock(cin: int, cout: int) -> nn.Module:
            return ResnetBlock(cin, cout, num_groups=groups, dropout=cfg.dropout)

        self.patcher = Patcher(cfg.patch_size)
        self.conv_in = nn.Conv2d(cfg.in_channels * cfg.patch_size**2, cfg.channels, 3, padding=1)
        flags, res, block_in = cfg.down_flags(), cfg.resolution // cfg.patch_size, cfg.channels
        self.down = nn.ModuleList()
        for i, mult in enumerate(cfg.channels_mult):
            block_out = cfg.channels * mult
            blocks = _blocks(resblock, block_in, block_out, cfg.num_res_blocks)
            attn = (
                [AttnBlock(block_out, num_groups=groups) for _ in blocks]
                if res in cfg.attn_resolutions
                else []
            )
            downsample = None
            if i in flags:
                downsample = Downsample(block_out)
                res //= 2
            self.down.append(_Level(blocks, attn, "downsample", downsample))
            block_in = block_out
        self.mid = _Mid(
            resblock(block_in, block_in), AttnBlock(block_in, num_groups=groups), resblock(block_in, block_in)
        )
        self.norm_out = group_norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, cfg.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(self.patcher(x))
        for level in self.down:
            h = level(h)
        return self.conv_out(fused_group_norm(self.norm_out, self.mid(h), silu=True))


class Decoder(nn.Module):
    """Cosmos's 2D image decoder (``layers2d.Decoder``), ending in the inverse Haar transform."""

    def __init__(self, cfg: TokenizerNetworkConfig) -> None:
        super().__init__()
        groups = cfg.num_groups

        def resblock(cin: int, cout: int) -> nn.Module:
            return ResnetBlock(cin, cout, num_groups=groups, dropout=cfg.dropout)

        mult, flags = cfg.decoder_mult, cfg.up_flags()
        block_in = cfg.channels * mult[-1]
        res = cfg.resolution // cfg.patch_size // 2 ** (len(mult) - 1)
        self.conv_in = nn.Conv2d(cfg.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(
            resblock(block_in, block_in), AttnBlock(block_in, num_groups=groups), resblock(block_in, block_in)
        )
        levels = []
        for i in reversed(range(len(mult))):
            block_out = cfg.channels * mult[i]
            blocks = _blocks(resblock, block_in, block_out, cfg.num_res_blocks + 1)
            attn = (
                [AttnBlock(block_out, num_groups=groups) for _ in blocks]
                if res in cfg.attn_resolutions
                else []
            )
            upsample = None
            if i in flags:
                upsample = Upsample(block_out)
                res *= 2
            levels.insert(0, _Level(blocks, attn, "upsample", upsample))
            block_in = block_out
        self.up = nn.ModuleList(levels)
        self.norm_out = group_norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, cfg.out_channels * cfg.patch_size**2, 3, padding=1)
        self.unpatcher = UnPatcher(cfg.patch_size)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for level in reversed(self.up):
            h = level(h)
        return self.unpatcher(self.conv_out(fused_group_norm(self.norm_out, h, silu=True)))


class TokenizerBase(nn.Module):
    """What every Cosmos tokenizer has: the encoder, ``quant_conv`` (``z_channels`` to
    ``latent_channels``), ``post_quant_conv`` and the decoder, run over temporal chunks and spatial
    tiles. :class:`ContinuousTokenizer` and :class:`DiscreteTokenizer` say what the latents are.
    """

    def __init__(self, config: TokenizerNetworkConfig, latent_channels: int) -> None:
        super().__init__()
        self.config = config
        z = config.z_channels
        if config.is_video:
            self.encoder = EncoderFactorized(config)
            self.decoder = DecoderFactorized(config)
            self.quant_conv = CausalConv3d(z, latent_channels, 1)
            self.post_quant_conv = CausalConv3d(latent_channels, z, 1)
        else:
            self.encoder = Encoder(config)
            self.decoder = Decoder(config)
            self.quant_conv = nn.Conv2d(z, latent_channels, 1)
            self.post_quant_conv = nn.Conv2d(latent_channels, z, 1)

    def _check_pixels(self, x: Tensor) -> None:
        """``encode``'s input: (B, 3, 1 + t*k, H, W) video or (B, 3, H, W) images, H and W
        multiples of the spatial compression s."""
        cfg = self.config
        self._check_layout("encode", "x", x, cfg.in_channels)
        if cfg.is_video and (x.shape[2] - 1) % cfg.temporal_compression:
            t = cfg.temporal_compression
            valid = ", ".join(str(1 + t * k) for k in range(4))
            raise ValueError(f"encode: needs T = 1 + {t}k frames ({valid}, ...), got {x.shape[2]}")
        s = cfg.spatial_compression
        height, width = x.shape[-2:]
        if height % s or width % s:
            raise ValueError(
                f"encode: H and W must be divisible by spatial_compression = {s}, got H = {height}, "
                f"W = {width} (e.g. {height // s * s or s} x {width // s * s or s})"
            )

    def _encode_chunk(self, x: Tensor, state: StreamState | None) -> Tensor:
        return self.quant_conv(_run(self.encoder, x, state))

    def _decode_chunk(self, z: Tensor, state: StreamState | None) -> Tensor:
        return _run(self.decoder, _run(self.post_quant_conv, z, state), state)

    def _code(
        self,
        op: str,
        x: Tensor,
        chunk_frames: int | None,
        tile: tuple[int, int] | None,
        overlap: int,
        progress: bool,
    ) -> Tensor:
        """Run ``op`` over the spatial tiles of ``x``, each streamed in temporal chunks."""
        cfg = self.config
        s, t = cfg.spatial_compression, cfg.temporal_compression
        encoding = op == "encode"
        run, step = (self._encode_chunk, t) if encoding else (self._decode_chunk, 1)
        sizes = _chunk_sizes(op, x, chunk_frames, step, cfg.is_video)
        # Frames of the whole output, used only when streaming (video): images run whole.
        frames = x.shape[2]
        out_frames = 1 + (frames - 1) // t if encoding else 1 + t * (frames - 1)
        # Tiles are cut in the input's units: pixels when encoding, latent pixels when decoding.
        unit = 1 if encoding else s
        grid = _tile_grid(op, x.shape[-2:], tile, overlap, s, unit)
        scale = (1, s) if encoding else (s, 1)
        with tqdm(
            total=len(sizes) * len(grid[0]) * len(grid[1]), desc=op, unit="chunk", disable=not progress
        ) as bar:

            def stream(part: Tensor) -> Tensor:
                return _stream(run, part, sizes, out_frames, bar)

            return _tiled(stream, x, grid, overlap // unit, scale)

    def _check_layout(self, op: str, name: str, t: Tensor, channels: int) -> None:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
        video = self.config.is_video
        if t.dim() != (5 if video else 4) or t.shape[1] != channels:
            layout = "(B, C, T, H, W) video" if video else "(B, C, H, W) images"
            raise ValueError(f"{op}: {name} must be {layout} with C = {channels}, got shape {tuple(t.shape)}")


class ContinuousTokenizer(TokenizerBase):
    """A Cosmos continuous tokenizer (autoencoder): ``encode`` pixels, ``decode`` latents.

    Video: (B, 3, 1 + t*k, H, W) <-> (B, latent_channels, 1 + k, H/s, W/s) for temporal compression t
    and spatial compression s. Images: (B, 3, H, W) <-> (B, latent_channels, H/s, W/s). Pixels are in
    [-1, 1]; ``decode`` does not clamp. The latents are the raw network output: see ``latents.py`` for
    the normalization the diffusion models apply on top.
    """

    config: TokenizerConfig

    def __init__(self, config: TokenizerConfig) -> None:
        super().__init__(config, config.latent_channels)

    def encode(
        self,
        x: Tensor,
        chunk_frames: int | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = 0,
        progress: bool = False,
    ) -> Tensor:
        """Pixels in [-1, 1] to latents (Cosmos's AE formulation: no sampling).

        Args:
            x: (B, 3, 1 + t*k, H, W) video or (B, 3, H, W) images.
            chunk_frames: video only; None runs the whole video at once. Otherwise 1 + t*m frames
                (m >= 1): the video streams through the encoder in chunks of 1 + t*m frames, then
                t*m frames, carrying the causal context across chunks, so the result equals the
                whole-video one while activation memory follows the chunk, not the video.
            tile: (height, width) in pixels, multiples of the spatial compression: encode
                overlapping tiles of this size and blend their latents with a linear ramp across
                each overlap. An approximation: convolutions see the tile borders.
            overlap: pixels shared by neighbouring tiles, a multiple of the spatial compression.
            progress: show a progress bar over the chunks (and tiles).
        """
        self._check_pixels(x)
        return self._code("encode", x, chunk_frames, tile, overlap, progress)

    def decode(
        self,
        latents: Tensor,
        chunk_frames: int | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = 0,
        progress: bool = False,
    ) -> Tensor:
        """Latents to pixels, (B, C, 1 + k, h, w) -> (B, 3, 1 + t*k, h*s, w*s) for video.

        ``chunk_frames`` counts latent frames, 1 + m (m >= 1): chunks of 1 + m, then m latent
        frames, decoded to 1 + t*m, then t*m frames, equal to the whole-video result. ``tile`` and
        ``overlap`` are in output pixels, as in :meth:`encode`: the latents are cut into tiles of
        ``tile / s`` sharing ``overlap / s`` latent pixels, and the decoded tiles are blended.
        """
        self._check_layout("decode", "latents", latents, self.config.latent_channels)
        return self._code("decode", latents, chunk_frames, tile, overlap, progress)

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


class DiscreteTokenizer(TokenizerBase):
    """A Cosmos discrete tokenizer (DV video, DI images): pixels to integer tokens and back.

    The networks are the continuous ones (``quant_conv`` to ``embedding_dim`` = 6 channels), then FSQ
    (:class:`~cosmos_kernels.nn.FSQuantizer`): each latent position becomes one of
    ``codebook_size`` = 64,000 codes, named by its index 0 .. 63,999. Video (B, 3, 1 + t*k, H, W)
    gives int32 indices (B, 1 + k, H/s, W/s); images (B, 3, H, W) give (B, H/s, W/s). Codes are the
    quantized latents, (B, 6, ...) with values in [-1, 1]. Cosmos Tokenizer's
    ``networks/discrete_video.py`` / ``discrete_image.py``; docs/COSMOS.md Part 2, section 2.

    ``forward`` reconstructs through the straight-through rounding, so the whole model trains on a
    pixel loss.
    """

    config: DiscreteTokenizerConfig

    def __init__(self, config: DiscreteTokenizerConfig) -> None:
        super().__init__(config, config.embedding_dim)
        self.quantizer = FSQuantizer(config.levels)

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def encode(
        self,
        x: Tensor,
        chunk_frames: int | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = 0,
        progress: bool = False,
        return_codes: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Pixels in [-1, 1] to int32 token indices, and the codes too if ``return_codes``.

        The latents before quantization are computed as :meth:`ContinuousTokenizer.encode` computes
        its latents (streamed, tiled) and quantized at the end, so chunked streaming gives the same
        tokens as the whole video.

        Args:
            x: (B, 3, 1 + t*k, H, W) video or (B, 3, H, W) images.
            chunk_frames, tile, overlap, progress: as in :meth:`ContinuousTokenizer.encode`; tiles
                blend the latents before quantization.
            return_codes: also return the codes, (B, embedding_dim, ...) in ``x``'s dtype.
        """
        self._check_pixels(x)
        indices, codes = self.quantizer(self._code("encode", x, chunk_frames, tile, overlap, progress))
        return (indices, codes) if return_codes else indices

    def decode(
        self,
        indices: Tensor,
        chunk_frames: int | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = 0,
        progress: bool = False,
    ) -> Tensor:
        """Token indices to pixels: (B, 1 + k, h, w) -> (B, 3, 1 + t*k, h*s, w*s) for video,
        (B, h, w) -> (B, 3, h*s, w*s) for images. Indices must be integers in [0, codebook_size).
        ``chunk_frames``, ``tile`` and ``overlap`` as in :meth:`ContinuousTokenizer.decode`."""
        return self.decode_codes(self.indices_to_codes(indices), chunk_frames, tile, overlap, progress)

    def decode_codes(
        self,
        codes: Tensor,
        chunk_frames: int | None = None,
        tile: tuple[int, int] | None = None,
        overlap: int = 0,
        progress: bool = False,
    ) -> Tensor:
        """Codes (B, embedding_dim, ...) to pixels, as :meth:`decode` does for their indices."""
        self._check_layout("decode_codes", "codes", codes, self.config.embedding_dim)
        return self._code("decode", codes, chunk_frames, tile, overlap, progress)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Codes (B, embedding_dim, ...) in the model's dtype of integer indices (B, ...)."""
        ndim = 4 if self.config.is_video else 3
        if isinstance(indices, Tensor) and indices.dim() != ndim:
            layout = "(B, T, H, W) video" if self.config.is_video else "(B, H, W) images"
            raise ValueError(f"decode: indices must be {layout} tokens, got shape {tuple(indices.shape)}")
        return self.quantizer.indices_to_codes(indices, next(self.post_quant_conv.parameters()).dtype)

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """int32 indices (B, ...) of codes (B, embedding_dim, ...)."""
        return self.quantizer.codes_to_indices(codes)

    def forward(self, x: Tensor) -> Tensor:
        """The reconstruction of ``x`` through the quantized codes (differentiable: straight through)."""
        _, codes = self.encode(x, return_codes=True)
        return self.decode_codes(codes)


def _chunk_sizes(op: str, x: Tensor, chunk_frames: int | None, step: int, video: bool) -> list[int]:
    """Frames of each temporal chunk: 1 + step*m, then step*m, ..., the last one possibly shorter."""
    if chunk_frames is None:
        return [x.shape[2]] if video else [x.shape[0]]
    if not video:
        raise ValueError(f"{op}: chunk_frames is for video tokenizers; images have no frames to stream")
    if (
        isinstance(chunk_frames, bool)
        or not isinstance(chunk_frames, int)
        or chunk_frames < 1 + step
        or (chunk_frames - 1) % step
    ):
        valid = ", ".join(str(1 + step * m) for m in range(1, 4))
        raise ValueError(
            f"{op}: chunk_frames must be None or 1 + {step}m with m >= 1 ({valid}, ...): the first "
            f"chunk holds frame 0 and later chunks whole multiples of {step}, got {chunk_frames!r}"
        )
    frames = x.shape[2]
    first = min(chunk_frames, frames)
    rest = range(first, frames, chunk_frames - 1)
    return [first] + [min(chunk_frames - 1, frames - start) for start in rest]


def _stream(
    run: Callable[[Tensor, StreamState | None], Tensor],
    x: Tensor,
    sizes: list[int],
    out_frames: int,
    bar: tqdm,
) -> Tensor:
    """``run`` over the temporal chunks of ``x`` with one stream state, outputs joined along time.

    One chunk is the whole video: no state. Outputs are written into one preallocated tensor, so a
    long decode never holds its output twice.
    """
    if len(sizes) == 1:
        bar.update()
        return run(x, None)
    state, out, start = StreamState(), None, 0
    for chunk in x.split(sizes, dim=2):
        y = run(chunk, state)
        state.first = False
        if out is None:
            out = y.new_empty(*y.shape[:2], out_frames, *y.shape[3:])
        out[:, :, start : start + y.shape[2]] = y
        start += y.shape[2]
        bar.update()
    return out


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Offsets of tiles of ``tile`` sharing ``overlap`` along ``size``; the last one ends at the edge."""
    if tile >= size:
        return [0]
    return [*range(0, size - tile, tile - overlap), size - tile]


def _tile_grid(
    op: str, shape: torch.Size, tile: tuple[int, int] | None, overlap: int, s: int, unit: int
) -> tuple[list[int], list[int], int, int]:
    """Tile rows, columns, height and width over ``shape`` (H, W), in units of ``unit`` pixels."""
    height, width = shape
    if tile is None:
        return [0], [0], height, width
    ok = (
        isinstance(tile, tuple | list)
        and len(tile) == 2
        and all(isinstance(n, int) and n > 0 and n % s == 0 for n in tile)
    )
    if not ok:
        raise ValueError(f"{op}: tile must be (height, width) in pixels, multiples of {s}, got {tile!r}")
    if (
        isinstance(overlap, bool)
        or not isinstance(overlap, int)
        or overlap < 0
        or overlap % s
        or overlap >= min(tile)
    ):
        raise ValueError(
            f"{op}: overlap must be pixels, a multiple of {s} in [0, {min(tile)}) for tile {tile}, "
            f"got {overlap!r}"
        )
    th, tw = (min(n // unit, size) for n, size in zip(tile, shape, strict=True))
    step = overlap // unit
    return _tile_starts(height, th, step), _tile_starts(width, tw, step), th, tw


def _ramp(length: int, fade: int, fade_in: bool, fade_out: bool, like: Tensor) -> Tensor:
    """Blend weights along one tile axis: rising over the first ``fade`` entries where a tile
    before it overlaps, falling over the last ``fade`` where one after it does, 1 elsewhere."""
    w = torch.ones(length, dtype=like.dtype, device=like.device)
    edge = torch.arange(1, fade + 1, dtype=like.dtype, device=like.device) / (fade + 1)
    if fade_in:
        w[:fade] = edge
    if fade_out:
        w[length - fade :] = torch.minimum(w[length - fade :], edge.flip(0))
    return w


def _tiled(
    run: Callable[[Tensor], Tensor],
    x: Tensor,
    grid: tuple[list[int], list[int], int, int],
    overlap: int,
    scale: tuple[int, int],
) -> Tensor:
    """``run`` on each tile of ``x``'s last two axes, outputs (``scale`` = (num, den) times the size)
    blended: a weighted mean with linear ramps over the overlaps, so seams fade rather than jump."""
    rows, cols, th, tw = grid
    if len(rows) == len(cols) == 1:
        return run(x)
    num, den = scale
    height, width = x.shape[-2:]
    fade = overlap * num // den
    out = weight = None
    for r in rows:
        for c in cols:
            y = run(x[..., r : r + th, c : c + tw])
            if out is None:
                out = y.new_zeros(*y.shape[:-2], height * num // den, width * num // den)
                weight = y.new_zeros(out.shape[-2:])
            w = _ramp(y.shape[-2], fade, r > 0, r + th < height, y)[:, None] * _ramp(
                y.shape[-1], fade, c > 0, c + tw < width, y
            )
            r0, c0 = r * num // den, c * num // den
            out[..., r0 : r0 + y.shape[-2], c0 : c0 + y.shape[-1]] += w * y
            weight[r0 : r0 + y.shape[-2], c0 : c0 + y.shape[-1]] += w
    return out / weight


_DI = {"encoder": IMAGE, "decoder": IMAGE, "temporal_compression": 1, "z_channels": 256, "num_groups": 32}

TOKENIZER_CONFIGS: dict[str, TokenizerConfig | DiscreteTokenizerConfig] = {
    # Cosmos Tokenizer's continuous_video dict (Cosmos-0.1 / 1.0 CV8x8x8).
    "cv8x8x8": TokenizerConfig(),
    # Cosmos-0.1-Tokenizer-CV4x8x8 as Cosmos Tokenizer's torch mode builds it: patch 4, the Haar
    # patcher does all 4x of time, and the decoder has two levels.
    "cv4x8x8": TokenizerConfig(temporal_compression=4, decoder_channels_mult=(2, 4)),
    # continuous_image with spatial_compression 8 (Cosmos-0.1-Tokenizer-CI8x8).
    "ci8x8": TokenizerConfig(encoder=IMAGE, decoder=IMAGE, temporal_compression=1, num_groups=32),
    # The same networks at width 8 (GroupNorm 8 groups in the image one): for tests and CPU runs.
    "tiny-cv8x8x8": TokenizerConfig(channels=8),
    "tiny-cv4x8x8": TokenizerConfig(channels=8, temporal_compression=4, decoder_channels_mult=(2, 4)),
    "tiny-ci8x8": TokenizerConfig(
        encoder=IMAGE, decoder=IMAGE, temporal_compression=1, channels=8, num_groups=8
    ),
    # The discrete tokenizers: Cosmos's discrete_video / discrete_image dicts with the overrides of
    # the Cosmos-1.0 repo's networks/configs.py (docs/COSMOS.md Part 2, 2.2).
    "dv8x16x16": DiscreteTokenizerConfig(),  # Cosmos-0.1/1.0-Tokenizer-DV8x16x16
    "dv8x8x8": DiscreteTokenizerConfig(spatial_compression=8),  # Cosmos-0.1-Tokenizer-DV8x8x8
    # Cosmos-0.1-Tokenizer-DV4x8x8: the patcher does all 4x of time; both networks keep 3 levels.
    "dv4x8x8": DiscreteTokenizerConfig(temporal_compression=4, spatial_compression=8),
    # Cosmos-1.0-Tokenizer-DV4x8x8-LowRes = Cosmos-Tokenize1-DV4x8x8-360p: one Haar level, z 256.
    "dv4x8x8-360p": DiscreteTokenizerConfig(
        temporal_compression=4, spatial_compression=8, patch_size=2, z_channels=256
    ),
    "di8x8": DiscreteTokenizerConfig(spatial_compression=8, num_quantizers=4, **_DI),  # Cosmos-0.1
    "di16x16": DiscreteTokenizerConfig(spatial_compression=16, num_quantizers=4, **_DI),
    # DV8x16x16's networks at width 8: for tests, CPU runs and the tiny token demo.
    "tiny-dv8x16x16": DiscreteTokenizerConfig(channels=8),
}


def tokenizer_config(name: str, /, **overrides: Any) -> TokenizerConfig | DiscreteTokenizerConfig:
    """The named config with some keys replaced (Cosmos config key names, see :class:`TokenizerConfig`
    and :class:`DiscreteTokenizerConfig`)."""
    return named_config("tokenizer", TOKENIZER_CONFIGS, name, overrides)


def build_tokenizer(name: str, /, **overrides: Any) -> ContinuousTokenizer | DiscreteTokenizer:
    """A fresh (randomly initialized) tokenizer: ``build_tokenizer("cv8x8x8")``,
    ``build_tokenizer("tiny-cv8x8x8", channels=16)``, or a discrete one, ``build_tokenizer("dv8x16x16")``.
    Builds on the default device, so ``with torch.device("meta"):`` gives a weightless model."""
    config = tokenizer_config(name, **overrides)
    if isinstance(config, DiscreteTokenizerConfig):
        return DiscreteTokenizer(config)
    return ContinuousTokenizer(config)
