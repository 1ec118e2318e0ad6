"""Our fused ops inside diffusers' Cosmos models, with one call.

``apply_cosmos_kernels(obj)`` patches one diffusers object in place: a ``CosmosTransformer3DModel``
(Cosmos-1.0, Predict2, Predict2.5, Transfer2.5), a ``CosmosControlNetModel`` (Transfer2.5), an
``AutoencoderKLCosmos``, an ``AutoencoderKLWan``, or a pipeline holding them as ``.transformer``,
``.controlnet`` and ``.vae``. Nothing global changes: the patches are instance attributes (attention
processors, ``forward`` of single modules), ``remove_cosmos_kernels`` deletes them again, and applying
twice is applying once. The diffusers modules stay the reference: a patched model computes their
function, and tests compare outputs and gradients with the unpatched model.

What runs on our ops:

- attention: every Cosmos ``Attention`` gets a processor that calls ``ops.attention`` with the q/k
  RMSNorm weights and diffusers' RoPE tables. diffusers' tables are (S, D) with both halves equal
  (``torch.cat([t, h, w] * 2)``) for a rotate-half rotation (``apply_rotary_emb(...,
  use_real_unbind_dim=-2)``), ours (S, D/2) for the same rotation: we pass the first half, and check
  at patch time, on the model's own RoPE module, that the halves are equal. A boolean attention mask
  that keeps a prefix of the keys becomes ``k_lengths``; any other mask (float masks are additive in
  diffusers, boolean masks with holes, masks under ``torch.compile``, where the prefix test cannot
  run) goes to diffusers' own processor, which keeps its meaning.
- AdaLN: each ``CosmosTransformerBlock``'s forward runs its first norm on ``adaln_modulate`` and each
  ``x + gate * y`` followed by the next norm on ``gated_residual_adaln``; the AdaLN-Zero norms and the
  final ``CosmosAdaLayerNorm`` run on ``adaln_modulate`` when called alone. Per-frame timesteps
  (Predict2, 2.5 and Transfer2.5 always pass (B, 1, T, 1, 1)) reach the blocks from diffusers' forward
  as per-token rows (B, S, D), each frame's row repeated over its H'W' tokens; hooks on the model note
  the frame layout, and the patched blocks and final norm compute the modulation MLP on one row per
  frame, which ``adaln_modulate`` and ``gated_residual_adaln`` take as (B, T, D): the same values,
  H'W' times fewer MLP rows, and per-frame rows read instead of per-token ones. The expanded tensor
  keeps the decision, so a checkpointed block's rerun in the backward takes the same path. Where the
  layout is unknown (a block called alone, sequence shards under context parallelism) the rows stay
  per token.
- VAE (``AutoencoderKLCosmos``): GroupNorm followed by SiLU in the ResNet blocks and at the encoder's
  and decoder's output on ``group_norm_silu``, GroupNorm alone (attention) on it without SiLU, and the
  Haar patcher/unpatcher on ``haar3d_analysis``/``haar3d_synthesis``. ``AutoencoderKLWan`` (Predict2/2.5):
  its RMS norms over channels on ``rms_norm_channels_silu`` (one pass instead of ~6), with the SiLU
  that follows each norm in the residual blocks and the encoder's and decoder's heads: those norms
  apply it and the owner's ``nonlinearity`` becomes an identity, so the owners' forwards, which carry
  a causal frame cache, stay diffusers'. Fused only where the owner's forward source shows the SiLU
  right after each norm and nowhere else; the attention block's norm has no SiLU.

If the installed diffusers' classes do not have the structure this module was written against
(diffusers 0.42), ``apply_cosmos_kernels`` raises ``UnsupportedDiffusersError`` naming the version and
the module before it patches anything.
"""

import functools
import logging
import types
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from cosmos_kernels import ops
from cosmos_kernels.integrations import diffusers_context_parallel
from cosmos_kernels.ops.attention_8bit import check_precision

try:
    import diffusers
    from diffusers.models.autoencoders import autoencoder_kl_cosmos as _kl_cosmos
    from diffusers.models.transformers import transformer_cosmos as _cosmos
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "cosmos_kernels.integrations.diffusers needs diffusers: pip install 'cosmos-kernels[diffusers]'"
    ) from error

Tensor = torch.Tensor
logger = logging.getLogger(__name__)

SUPPORTED_CLASSES = (
    "CosmosTransformer3DModel",
    "CosmosControlNetModel",
    "AutoencoderKLCosmos",
    "AutoencoderKLWan",
    "a pipeline holding them as .transformer, .controlnet or .vae",
)
PIPELINE_COMPONENTS = ("transformer", "controlnet", "vae")
REPORT_ATTRIBUTE = "cosmos_kernels_patches"
_BACKEND_ATTRIBUTE = "_cosmos_kernels_backend"
_LAYOUT_ATTRIBUTE = "_cosmos_kernels_frame_layout"
_LAYOUT_HOOKS_ATTRIBUTE = "_cosmos_kernels_frame_layout_hooks"
_ROWS_ATTRIBUTE = "_cosmos_kernels_tokens_per_frame"  # on diffusers' per-token modulation input
_SILU_ATTRIBUTE = "_cosmos_kernels_silu"  # a Wan block's own SiLU, while its norms apply it

# The parameters diffusers passes by name; a patched forward or processor must take the same ones.
_BLOCK_PARAMETERS = (
    "hidden_states",
    "encoder_hidden_states",
    "embedded_timestep",
    "temb",
    "image_rotary_emb",
    "extra_pos_emb",
    "attention_mask",
    "controlnet_residual",
    "latents",
    "block_idx",
)
_NORM_PARAMETERS = ("hidden_states", "embedded_timestep", "temb")
_PROCESSOR_PARAMETERS = (
    "attn",
    "hidden_states",
    "encoder_hidden_states",
    "attention_mask",
    "image_rotary_emb",
)


class UnsupportedDiffusersError(RuntimeError):
    """The installed diffusers' Cosmos classes are not the shape this integration patches."""


@dataclass
class PatchReport:
    """What one ``apply_cosmos_kernels`` call patched, by kind, and what it left alone and why."""

    attention_processors: int = 0
    adaln_norms: int = 0
    blocks: int = 0
    group_norms: int = 0
    vae_blocks: int = 0
    haar_transforms: int = 0
    rms_norms: int = 0
    left_unpatched: list[str] = field(default_factory=list)

    def add(self, other: "PatchReport") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def __str__(self) -> str:
        counts = ", ".join(f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self)[:-1])
        rest = f"; left unpatched: {'; '.join(self.left_unpatched)}" if self.left_unpatched else ""
        return f"cosmos_kernels patched {counts}{rest}"


def _structure_error(module: object, what: str) -> UnsupportedDiffusersError:
    cls = type(module)
    return UnsupportedDiffusersError(
        f"apply_cosmos_kernels: diffusers {diffusers.__version__} has a {cls.__module__}.{cls.__qualname__} "
        f"that {what}; this integration was written against diffusers 0.42's Cosmos classes. Nothing was "
        "patched. Run the model unpatched, or install a diffusers version this cosmos_kernels supports."
    )


def _parameter_names(fn: Callable[..., Any]) -> tuple[str, ...]:
    import inspect

    return tuple(inspect.signature(fn).parameters)


def _require(module: nn.Module, what: str, ok: bool) -> None:
    if not ok:
        raise _structure_error(module, what)


def _require_attributes(module: nn.Module, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not hasattr(module, n)]
    _require(module, f"lacks the attribute(s) {missing}", not missing)


def _backend(module: nn.Module) -> str:
    return getattr(module, _BACKEND_ATTRIBUTE)


def _bind_forward(module: nn.Module, forward: Callable[..., Any], backend: str) -> None:
    # A bound method, not a closure: copy.deepcopy of a patched model rebinds it to the copy.
    module.forward = types.MethodType(forward, module)
    setattr(module, _BACKEND_ATTRIBUTE, backend)


def _forward_is_patched(module: nn.Module) -> bool:
    forward = module.__dict__.get("forward")
    return getattr(forward, "__func__", None) in _PATCHED_FORWARDS


def _unbind_forward(module: nn.Module) -> bool:
    if not _forward_is_patched(module):
        return False
    del module.__dict__["forward"]
    del module.__dict__[_BACKEND_ATTRIBUTE]
    module.__dict__.pop(_LAYOUT_ATTRIBUTE, None)
    return True


def _check_forward_free(module: nn.Module) -> None:
    """A forward set on the instance by someone else (accelerate's offload hooks) would be lost."""
    if "forward" in module.__dict__ and not _forward_is_patched(module):
        raise ValueError(
            f"apply_cosmos_kernels: {type(module).__name__} already has an instance-level forward (an "
            "accelerate/offload hook?); apply cosmos kernels before enabling offloading"
        )


# ---------------------------------------------------------------------------------------------
# Attention


def _norm_weight(norm: nn.Module | None, like: Tensor) -> Tensor | None:
    weight = getattr(norm, "weight", None)
    return None if weight is None else weight.to(like.dtype)


def _prefix_lengths(mask: Tensor | None, batch: int, seq_k: int) -> tuple[bool, Tensor | None]:
    """(our ops can take it, k_lengths): a boolean key mask keeping a non-empty prefix -> its lengths."""
    if mask is None:
        return True, None
    # The prefix test reads the mask's values: a traced graph cannot branch on them.
    if mask.dtype != torch.bool or torch.compiler.is_compiling():
        return False, None
    if mask.shape[-1] != seq_k or mask.numel() not in (seq_k, batch * seq_k):
        return False, None
    keep = mask.reshape(-1, seq_k)
    lengths = keep.sum(-1)
    prefix = torch.arange(seq_k, device=mask.device) < lengths[:, None]
    if not bool(torch.equal(prefix, keep)) or not bool((lengths > 0).all()):
        return False, None
    return True, lengths.to(torch.int32).expand(batch).contiguous()


def _fused_heads_attention(
    projections: tuple[nn.Module, nn.Module, nn.Module],
    norms: tuple[nn.Module | None, nn.Module | None],
    heads: int,
    x: Tensor,
    context: Tensor,
    rope: tuple[Tensor, Tensor] | None,
    k_lengths: Tensor | None,
    backend: str,
    attend: Callable[..., Tensor],
    precision: str | None = None,
) -> Tensor:
    """Project, split heads in the BSHD layout ops.attention takes (no transposes), attend; (B, S, H*D).

    ``attend`` is ``ops.attention`` or, under context parallelism, ring/Ulysses attention (same
    keywords; no key masking there, so ``k_lengths`` is passed only when given)."""
    to_q, to_k, to_v = projections
    q = to_q(x).unflatten(2, (heads, -1))
    k = to_k(context).unflatten(2, (heads, -1))
    v = to_v(context).unflatten(2, (heads, -1))
    rope_kwargs = {}
    if rope is not None:
        half = q.shape[-1] // 2
        # Both halves of diffusers' (S, D) tables are equal (checked when patching): ours take one.
        rope_kwargs = {"rope_cos": rope[0][:, :half], "rope_sin": rope[1][:, :half]}
    norm_q, norm_k = norms
    masking = {} if k_lengths is None else {"k_lengths": k_lengths}
    if precision is not None:
        masking["precision"] = precision
    out = attend(
        q,
        k,
        v,
        q_norm_weight=_norm_weight(norm_q, q),
        k_norm_weight=_norm_weight(norm_k, k),
        norm_eps=getattr(norm_q, "eps", 1e-6),
        backend=backend,
        **rope_kwargs,
        **masking,
    )
    return out.flatten(2, 3)


class CosmosKernelsAttnProcessor:
    """diffusers attention processor for Cosmos ``Attention`` modules on ``ops.attention``.

    Holds the processor it replaced (``CosmosAttnProcessor2_0`` or ``CosmosAttnProcessor2_5``) and hands
    it the calls our op cannot take with the same meaning (masks other than a boolean key prefix).
    """

    def __init__(self, original: object, backend: str, precision: str | None = None) -> None:
        self.original = original
        self.backend = backend
        # None: exact attention; "qk-int8" / "qk-int8-pv-fp8": ops.attention's 8-bit inference path.
        self.precision = precision
        self.with_image_context = type(original).__name__ == "CosmosAttnProcessor2_5"
        # Set (on self-attention processors) while the transformer runs context-parallel: the ring,
        # Ulysses or hybrid attention over this rank's shard (diffusers_context_parallel).
        self.cp_attention: Callable[..., Tensor] | None = None

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | tuple[Tensor | None, Tensor | None] | None = None,
        attention_mask: Tensor | tuple[Tensor | None, Tensor | None] | None = None,
        image_rotary_emb: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        fallback = {
            "encoder_hidden_states": encoder_hidden_states,
            "attention_mask": attention_mask,
            "image_rotary_emb": image_rotary_emb,
        }
        img_context = img_mask = None
        if self.with_image_context:
            # CosmosAttnProcessor2_5's contract: a (text, image) context tuple, masks likewise.
            if not isinstance(encoder_hidden_states, tuple) or isinstance(attention_mask, Tensor):
                return self.original(attn, hidden_states, **fallback)
            text_context, img_context = encoder_hidden_states
            text_mask, img_mask = attention_mask if attention_mask else (None, None)
        else:
            text_context, text_mask = encoder_hidden_states, attention_mask
            if isinstance(text_mask, tuple):
                return self.original(attn, hidden_states, **fallback)
        context = hidden_states if text_context is None else text_context
        batch = hidden_states.shape[0]
        takes_text, text_lengths = _prefix_lengths(text_mask, batch, context.shape[1])
        takes_img, img_lengths = True, None
        if img_context is not None:
            takes_img, img_lengths = _prefix_lengths(img_mask, batch, img_context.shape[1])
        if not (takes_text and takes_img) or (
            image_rotary_emb is not None and context.shape[1] != hidden_states.shape[1]
        ):
            if self.cp_attention is not None and text_context is None:
                raise ValueError(
                    "context-parallel self-attention runs on sequence shards: it takes no attention mask"
                )
            return self.original(attn, hidden_states, **fallback)
        attend = ops.attention
        if self.cp_attention is not None and text_context is None:
            if self.precision is not None:
                raise ValueError(
                    "context-parallel self-attention runs exact ring attention: apply_cosmos_kernels "
                    "with attention_precision=None"
                )
            attend = self.cp_attention

        out = _fused_heads_attention(
            (attn.to_q, attn.to_k, attn.to_v),
            (attn.norm_q, attn.norm_k),
            attn.heads,
            hidden_states,
            context,
            image_rotary_emb,
            text_lengths,
            self.backend,
            attend,
            self.precision,
        )
        if img_context is not None:
            out = out + _fused_heads_attention(
                (attn.q_img, attn.k_img, attn.v_img),
                (attn.q_img_norm, attn.k_img_norm),
                attn.heads,
                hidden_states,
                img_context,
                None,
                img_lengths,
                self.backend,
                ops.attention,
                self.precision,
            )
        return attn.to_out[1](attn.to_out[0](out))


def _check_attention(attn: nn.Module) -> None:
    original = attn.processor
    if isinstance(original, CosmosKernelsAttnProcessor):
        original = original.original
    names = (_cosmos.CosmosAttnProcessor2_0, _cosmos.CosmosAttnProcessor2_5)
    _require(attn, f"has the processor {type(original).__name__}, not {names}", isinstance(original, names))
    _require(
        attn,
        f"has a processor whose __call__ takes {_parameter_names(type(original).__call__)[1:]}",
        _parameter_names(type(original).__call__)[1:] == _PROCESSOR_PARAMETERS,
    )
    _require_attributes(attn, ("to_q", "to_k", "to_v", "to_out", "heads", "norm_q", "norm_k"))
    if isinstance(original, _cosmos.CosmosAttnProcessor2_5):
        _require_attributes(attn, ("q_img", "k_img", "v_img", "q_img_norm", "k_img_norm"))
    head_dim = attn.to_q.out_features // attn.heads
    for name in ("norm_q", "norm_k", "q_img_norm", "k_img_norm"):
        norm = getattr(attn, name, None)
        if norm is None:
            continue
        weight = getattr(norm, "weight", None)
        _require(
            attn,
            f"has a {name} ({type(norm).__name__}) that is not a per-head RMSNorm with a ({head_dim},) "
            "weight and eps",
            isinstance(norm, _cosmos.RMSNorm)
            and getattr(norm, "bias", None) is None
            and (weight is None or weight.shape == (head_dim,)),
        )
    _require(
        attn,
        "has key/value heads different from its query heads (grouped-query attention)",
        attn.to_k.out_features == attn.to_q.out_features == attn.to_v.out_features,
    )


def _patch_attention(attn: nn.Module, backend: str, precision: str | None) -> None:
    original = attn.processor
    if isinstance(original, CosmosKernelsAttnProcessor):
        original = original.original
    attn.set_processor(CosmosKernelsAttnProcessor(original, backend, precision))


def _unpatch_attention(attn: nn.Module) -> bool:
    if not isinstance(attn.processor, CosmosKernelsAttnProcessor):
        return False
    attn.set_processor(attn.processor.original)
    return True


# ---------------------------------------------------------------------------------------------
# AdaLN


def _modulation(norm: nn.Module, embedded_timestep: Tensor, temb: Tensor | None, chunks: int, like: Tensor):
    """The AdaLN norm's (shift, scale[, gate]), each (B, D) or per token (B, S, D), in ``like``'s dtype."""
    mod = norm.linear_2(norm.linear_1(norm.activation(embedded_timestep)))
    if temb is not None:
        mod = mod + temb[..., : mod.shape[-1]]
    return tuple(m.to(like.dtype) for m in mod.chunk(chunks, dim=-1))


@dataclass
class _FrameLayout:
    """The token layout of the forward in progress while its timesteps are per frame; ``frames`` is
    None otherwise."""

    frames: int | None = None
    tokens_per_frame: int = 0


def _frame_layout_pre_hook(
    layout: _FrameLayout, video: tuple[str, int], timestep: tuple[str, int], module, args, kwargs
) -> None:
    """Notes (T', H'W') when diffusers will repeat per-frame modulation rows over each frame's tokens
    (its forward asserts p_t == 1, so latent frames are token frames)."""
    x, t = (
        kwargs[name] if name in kwargs else args[position] if position < len(args) else None
        for name, position in (video, timestep)
    )
    layout.frames = None
    if not (isinstance(x, Tensor) and x.dim() == 5 and isinstance(t, Tensor) and t.dim() == 5):
        return  # diffusers' forward reports bad arguments; per-sample timesteps need no layout
    _, p_h, p_w = module.config.patch_size
    layout.frames, layout.tokens_per_frame = x.shape[2], (x.shape[3] // p_h) * (x.shape[4] // p_w)


def _frame_layout_clear_hook(layout: _FrameLayout, module, args, kwargs, output) -> None:
    layout.frames = None


def _install_frame_layout(model: nn.Module, modules: list[nn.Module]) -> None:
    """Hooks that keep ``modules``' shared layout current while ``model``'s forward runs."""
    layout = _FrameLayout()
    # (name, position) of the video and the timestep in the model's forward.
    if isinstance(model, _cosmos.CosmosTransformer3DModel):
        video, timestep = ("hidden_states", 0), ("timestep", 1)
    else:
        video, timestep = ("controls_latents", 0), ("timestep", 2)
    model.__dict__[_LAYOUT_HOOKS_ATTRIBUTE] = [
        model.register_forward_pre_hook(
            functools.partial(_frame_layout_pre_hook, layout, video, timestep), with_kwargs=True
        ),
        model.register_forward_hook(
            functools.partial(_frame_layout_clear_hook, layout), with_kwargs=True, always_call=True
        ),
    ]
    for module in modules:
        module.__dict__[_LAYOUT_ATTRIBUTE] = layout


def _uninstall_frame_layout(model: nn.Module) -> None:
    for handle in model.__dict__.pop(_LAYOUT_HOOKS_ATTRIBUTE, []):
        handle.remove()


def _frame_rows(
    module: nn.Module, tokens: int, embedded_timestep: Tensor, temb: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """One modulation input row per frame where the rows are known to repeat over each frame's tokens."""
    if embedded_timestep.dim() != 3 or embedded_timestep.shape[1] != tokens:
        return embedded_timestep, temb
    step = getattr(embedded_timestep, _ROWS_ATTRIBUTE, None)
    if step is None:
        layout = module.__dict__.get(_LAYOUT_ATTRIBUTE)
        if layout is None or layout.frames is None or tokens != layout.frames * layout.tokens_per_frame:
            return embedded_timestep, temb
        step = layout.tokens_per_frame
        if not torch.compiler.is_compiling():
            # A checkpointed block runs again in the backward, after the forward's layout is cleared:
            # the tensor diffusers expanded carries the decision, so the rerun takes the same path.
            # (Compiled, the recomputation is part of the traced graph.)
            setattr(embedded_timestep, _ROWS_ATTRIBUTE, step)
    return embedded_timestep[:, ::step], None if temb is None else temb[:, ::step]


def _gated_add(x: Tensor, gate: Tensor, y: Tensor) -> Tensor:
    """``x + gate * y`` with gate (B, D) or one row per frame (B, T, D) of x's (B, S, D) tokens."""
    if gate.dim() == 2:
        return x + gate.unsqueeze(1) * y
    frames = gate.shape[1]
    return (x.unflatten(1, (frames, -1)) + gate.unsqueeze(2) * y.unflatten(1, (frames, -1))).flatten(1, 2)


def _ada_layer_norm_zero_forward(
    self: nn.Module, hidden_states: Tensor, embedded_timestep: Tensor, temb: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    shift, scale, gate = _modulation(self, embedded_timestep, temb, 3, hidden_states)
    out = ops.adaln_modulate(hidden_states, shift, scale, eps=self.norm.eps, backend=_backend(self))
    return out, gate.unsqueeze(1) if gate.dim() == 2 else gate


def _ada_layer_norm_forward(
    self: nn.Module, hidden_states: Tensor, embedded_timestep: Tensor, temb: Tensor | None = None
) -> Tensor:
    embedded_timestep, temb = _frame_rows(self, hidden_states.shape[1], embedded_timestep, temb)
    shift, scale = _modulation(self, embedded_timestep, temb, 2, hidden_states)
    return ops.adaln_modulate(hidden_states, shift, scale, eps=self.norm.eps, backend=_backend(self))


def _block_forward(
    self: nn.Module,
    hidden_states: Tensor,
    encoder_hidden_states: Any,
    embedded_timestep: Tensor,
    temb: Tensor | None = None,
    image_rotary_emb: tuple[Tensor, Tensor] | None = None,
    extra_pos_emb: Tensor | None = None,
    attention_mask: Any = None,
    controlnet_residual: Tensor | None = None,
    latents: Tensor | None = None,
    block_idx: int | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """``CosmosTransformerBlock.forward`` with each gated residual fused with the next AdaLN norm."""
    backend = _backend(self)
    x = hidden_states
    if self.before_proj is not None:
        x = self.before_proj(x) + latents
    if extra_pos_emb is not None:
        x = x + extra_pos_emb
    norms = (self.norm1, self.norm2, self.norm3)
    embedded_timestep, temb = _frame_rows(self, x.shape[1], embedded_timestep, temb)
    mods = [_modulation(norm, embedded_timestep, temb, 3, x) for norm in norms]
    modulated = ops.adaln_modulate(x, mods[0][0], mods[0][1], eps=self.norm1.norm.eps, backend=backend)
    y = self.attn1(modulated, image_rotary_emb=image_rotary_emb)
    x, modulated = ops.gated_residual_adaln(
        x, y.to(x.dtype), mods[0][2], mods[1][0], mods[1][1], eps=self.norm2.norm.eps, backend=backend
    )
    y = self.attn2(modulated, encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask)
    x, modulated = ops.gated_residual_adaln(
        x, y.to(x.dtype), mods[1][2], mods[2][0], mods[2][1], eps=self.norm3.norm.eps, backend=backend
    )
    x = _gated_add(x, mods[2][2], self.ff(modulated))
    if controlnet_residual is not None:
        if self.after_proj is not None:
            raise ValueError(
                "CosmosTransformerBlock: a control block (after_proj) takes no controlnet_residual"
            )
        x = x + controlnet_residual
    if self.after_proj is not None:
        return x, self.after_proj(x)
    return x


def _check_layer_norm(owner: nn.Module, norm: object) -> None:
    _require(
        owner,
        f"normalizes with {type(norm).__name__}, not a LayerNorm over the last dim without affine",
        isinstance(norm, nn.LayerNorm) and norm.weight is None and len(norm.normalized_shape) == 1,
    )


def _check_ada_norm(norm: nn.Module, cls: type) -> None:
    _require(norm, f"is not a {cls.__name__}", isinstance(norm, cls))
    _require_attributes(norm, ("norm", "activation", "linear_1", "linear_2"))
    _check_layer_norm(norm, norm.norm)
    _require(
        norm,
        f"has a forward taking {_parameter_names(type(norm).forward)[1:]}",
        _parameter_names(type(norm).forward)[1:] == _NORM_PARAMETERS,
    )


def _check_block(block: nn.Module) -> None:
    _require(block, "is not a CosmosTransformerBlock", isinstance(block, _cosmos.CosmosTransformerBlock))
    _require_attributes(
        block, ("norm1", "norm2", "norm3", "attn1", "attn2", "ff", "before_proj", "after_proj")
    )
    _require(
        block,
        f"has a forward taking {_parameter_names(type(block).forward)[1:]}",
        _parameter_names(type(block).forward)[1:] == _BLOCK_PARAMETERS,
    )
    for name in ("norm1", "norm2", "norm3"):
        _check_ada_norm(getattr(block, name), _cosmos.CosmosAdaLayerNormZero)
    for name in ("attn1", "attn2"):
        _check_attention(getattr(block, name))


def _check_rope_layout(model: nn.Module) -> None:
    """diffusers' RoPE tables must be (S, D) with equal halves (a rotate-half table, ours is one half)."""
    rope = model.rope
    _require(rope, "is not a CosmosRotaryPosEmbed", isinstance(rope, _cosmos.CosmosRotaryPosEmbed))
    p_t, p_h, p_w = rope.patch_size
    probe = torch.zeros(1, 1, 2 * p_t, 2 * p_h, 2 * p_w)
    try:
        cos, sin = rope(probe, fps=None)
    except Exception as error:  # the probe must not take the model down; report what failed
        raise _structure_error(
            rope, f"fails on a (1, 1, {2 * p_t}, {2 * p_h}, {2 * p_w}) probe: {error}"
        ) from error
    head_dim = rope.dim_t + rope.dim_h + rope.dim_w
    half = head_dim // 2
    ok = (
        cos.shape == sin.shape == (8, head_dim)
        and torch.equal(cos[:, :half], cos[:, half:])
        and torch.equal(sin[:, :half], sin[:, half:])
    )
    _require(rope, "does not give (S, D) cos/sin tables with equal halves (rotate-half RoPE)", ok)


# ---------------------------------------------------------------------------------------------
# VAE (AutoencoderKLCosmos)


def _group_norm(norm_module: nn.Module, x: Tensor, silu: bool, backend: str) -> Tensor:
    """CosmosCausalGroupNorm (+ SiLU): one group is per frame (our 5-D op), several span all frames."""
    norm = norm_module.norm
    weight, bias = norm.weight.to(x.dtype), norm.bias.to(x.dtype)
    if norm_module.num_groups == 1:
        return ops.group_norm_silu(x, weight, bias, num_groups=1, eps=norm.eps, silu=silu, backend=backend)
    # nn.GroupNorm on (B, C, T, H, W) takes statistics over (C/G, T, H, W): frames folded into rows.
    planes = x.contiguous().flatten(2, 3)
    out = ops.group_norm_silu(
        planes, weight, bias, num_groups=norm.num_groups, eps=norm.eps, silu=silu, backend=backend
    )
    return out.view_as(x)


def _causal_group_norm_forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
    return _group_norm(self, hidden_states, False, _backend(self))


def _resnet_block_forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
    backend = _backend(self)
    residual = self.conv_shortcut(hidden_states)
    hidden_states = self.conv1(_group_norm(self.norm1, hidden_states, True, backend))
    hidden_states = self.conv2(self.dropout(_group_norm(self.norm2, hidden_states, True, backend)))
    return hidden_states + residual


def _run_blocks(owner: nn.Module, blocks: list[nn.Module], hidden_states: Tensor) -> Tensor:
    for block in blocks:
        if torch.is_grad_enabled() and owner.gradient_checkpointing:
            hidden_states = owner._gradient_checkpointing_func(block, hidden_states)
        else:
            hidden_states = block(hidden_states)
    return hidden_states


def _encoder_forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
    hidden_states = self.conv_in(self.patch_embed(hidden_states))
    hidden_states = _run_blocks(self, [*self.down_blocks, self.mid_block], hidden_states)
    return self.conv_out(_group_norm(self.norm_out, hidden_states, True, _backend(self)))


def _decoder_forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
    hidden_states = self.mid_block(self.conv_in(hidden_states))
    hidden_states = _run_blocks(self, list(self.up_blocks), hidden_states)
    hidden_states = self.conv_out(_group_norm(self.norm_out, hidden_states, True, _backend(self)))
    return self.unpatch_embed(hidden_states)


def _haar_levels(patch_size: int) -> int:
    return patch_size.bit_length() - 1


def _patcher_forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
    levels = _haar_levels(self.patch_size)
    factor = 2**levels
    frames, height, width = hidden_states.shape[2:]
    # diffusers pads odd lengths (reflect); ours takes the exact lengths of Cosmos's inputs.
    if (frames - 1) % factor or height % factor or width % factor:
        return type(self).forward(self, hidden_states)
    return ops.haar3d_analysis(
        hidden_states, levels=levels, causal=True, rescale=True, backend=_backend(self)
    )


def _unpatcher_forward(self: nn.Module, hidden_states: Tensor) -> Tensor:
    levels = _haar_levels(self.patch_size)
    return ops.haar3d_synthesis(
        hidden_states, levels=levels, causal=True, rescale=True, backend=_backend(self)
    )


def _check_causal_group_norm(norm: nn.Module) -> None:
    _require(norm, "is not a CosmosCausalGroupNorm", isinstance(norm, _kl_cosmos.CosmosCausalGroupNorm))
    _require_attributes(norm, ("norm", "num_groups"))
    inner = norm.norm
    _require(
        norm,
        "does not hold an affine nn.GroupNorm with its num_groups",
        isinstance(inner, nn.GroupNorm) and inner.affine and inner.num_groups == norm.num_groups,
    )


def _check_vae(vae: nn.Module) -> None:
    _require_attributes(vae, ("encoder", "decoder"))
    encoder, decoder = vae.encoder, vae.decoder
    _require_attributes(
        encoder, ("patch_embed", "conv_in", "down_blocks", "mid_block", "norm_out", "conv_out")
    )
    _require_attributes(
        decoder, ("conv_in", "mid_block", "up_blocks", "norm_out", "conv_out", "unpatch_embed")
    )
    for owner in (encoder, decoder):
        _require(
            owner,
            f"has a forward taking {_parameter_names(type(owner).forward)[1:]}",
            _parameter_names(type(owner).forward)[1:] == ("hidden_states",),
        )
        _check_causal_group_norm(owner.norm_out)
    for module in vae.modules():
        if isinstance(module, _kl_cosmos.CosmosResnetBlock3d):
            _require_attributes(module, ("norm1", "conv1", "norm2", "dropout", "conv2", "conv_shortcut"))
            _check_causal_group_norm(module.norm1)
            _check_causal_group_norm(module.norm2)
        elif isinstance(module, _kl_cosmos.CosmosCausalGroupNorm):
            _check_causal_group_norm(module)
    for module, cls in (
        (encoder.patch_embed, "CosmosPatchEmbed3d"),
        (decoder.unpatch_embed, "CosmosUnpatcher3d"),
    ):
        _require(module, f"is not a {cls}", isinstance(module, getattr(_kl_cosmos, cls)))
        _require_attributes(module, ("patch_size", "patch_method"))
        size = module.patch_size
        _require(
            module, f"has a patch_size {size} that is not a power of 2", size >= 1 and size & (size - 1) == 0
        )


def _plan_vae(vae: nn.Module, backend: str, report: PatchReport) -> list[Callable[[], None]]:
    steps: list[Callable[[], None]] = []
    patched_norms: set[int] = set()
    for module in vae.modules():
        if isinstance(module, _kl_cosmos.CosmosResnetBlock3d):
            steps.append(lambda m=module: _bind_forward(m, _resnet_block_forward, backend))
            report.vae_blocks += 1
            report.group_norms += 2
            patched_norms.update((id(module.norm1), id(module.norm2)))
    for owner, forward in ((vae.encoder, _encoder_forward), (vae.decoder, _decoder_forward)):
        steps.append(lambda m=owner, f=forward: _bind_forward(m, f, backend))
        report.vae_blocks += 1
        report.group_norms += 1
        patched_norms.add(id(owner.norm_out))
    for module in vae.modules():
        if isinstance(module, _kl_cosmos.CosmosCausalGroupNorm) and id(module) not in patched_norms:
            steps.append(lambda m=module: _bind_forward(m, _causal_group_norm_forward, backend))
            report.group_norms += 1
    for module, forward in (
        (vae.encoder.patch_embed, _patcher_forward),
        (vae.decoder.unpatch_embed, _unpatcher_forward),
    ):
        if module.patch_method == "haar" and module.patch_size > 1:
            steps.append(lambda m=module, f=forward: _bind_forward(m, f, backend))
            report.haar_transforms += 1
        else:
            report.left_unpatched.append(
                f"{type(module).__name__} with patch_method={module.patch_method!r} (not a Haar transform)"
            )
    return steps


# ---------------------------------------------------------------------------------------------
# VAE (AutoencoderKLWan)


def _wan_rms_norm(self: nn.Module, x: Tensor, silu: bool) -> Tensor:
    bias = self.bias.reshape(-1).to(x.dtype) if isinstance(self.bias, Tensor) else None
    weight = self.gamma.reshape(-1).to(x.dtype)
    return ops.rms_norm_channels_silu(x, weight, bias, silu=silu, backend=_backend(self))


def _wan_rms_norm_forward(self: nn.Module, x: Tensor) -> Tensor:
    """``WanRMS_norm`` (normalize over channels, * sqrt(C) * gamma + bias) in one pass."""
    return _wan_rms_norm(self, x, silu=False)


def _wan_rms_norm_silu_forward(self: nn.Module, x: Tensor) -> Tensor:
    """``WanRMS_norm`` and the SiLU its owner applies next, in one pass (the owner's SiLU is then an
    identity, see :func:`_silu_follows_norms`)."""
    return _wan_rms_norm(self, x, silu=True)


def _silu_follows_norms(owner: nn.Module, norms: tuple[str, ...]) -> bool:
    """Whether ``owner``'s own SiLU can move into ``norms`` (see :func:`_forward_applies_silu_after`)."""
    # A re-apply plans before it removes the last patch: the owner's own SiLU is then kept aside.
    silu = owner.__dict__.get(_SILU_ATTRIBUTE, getattr(owner, "nonlinearity", None))
    return isinstance(silu, nn.SiLU) and _forward_applies_silu_after(type(owner).forward, norms)


@functools.cache
def _forward_applies_silu_after(forward: Callable[..., Any], norms: tuple[str, ...]) -> bool:
    """Whether ``forward`` calls each of ``norms`` once and applies ``self.nonlinearity`` right after
    each and nowhere else, so that the norms can apply it and the owner's becomes an identity; the
    owner's forward, with its causal frame cache, stays diffusers'. Read from its source, once per
    function (a VAE has dozens of owners of three classes)."""
    import inspect

    try:
        source = inspect.getsource(forward)
    except (OSError, TypeError):
        return False
    lines = [line.strip() for line in source.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    uses = [i for i, line in enumerate(lines) if "self.nonlinearity" in line]
    expected = [f"x = self.{name}(x)" for name in norms]
    called_once = all(sum(f"self.{name}(" in line for line in lines) == 1 for name in norms)
    return (
        called_once
        and [lines[i] for i in uses] == ["x = self.nonlinearity(x)"] * len(norms)
        and [lines[i - 1] for i in uses] == expected
    )


def _fuse_silu(owner: nn.Module, norms: tuple[str, ...], backend: str) -> None:
    for name in norms:
        _bind_forward(getattr(owner, name), _wan_rms_norm_silu_forward, backend)
    owner.__dict__[_SILU_ATTRIBUTE] = owner.nonlinearity
    owner.nonlinearity = nn.Identity()


def _unfuse_silu(owner: nn.Module) -> bool:
    if _SILU_ATTRIBUTE not in owner.__dict__:
        return False
    owner.nonlinearity = owner.__dict__.pop(_SILU_ATTRIBUTE)
    return True


def _plan_wan_vae(vae: nn.Module, backend: str, report: PatchReport) -> list[Callable[[], None]]:
    from diffusers.models.autoencoders import autoencoder_kl_wan as wan

    # The modules whose SiLU follows their norms, and those norms.
    owners = {
        wan.WanResidualBlock: ("norm1", "norm2"),
        wan.WanEncoder3d: ("norm_out",),
        wan.WanDecoder3d: ("norm_out",),
    }
    steps: list[Callable[[], None]] = []
    fused: set[int] = set()
    unfused = 0
    for module in vae.modules():
        norms = owners.get(type(module))
        if norms is None:
            continue
        if _silu_follows_norms(module, norms):
            steps.append(lambda m=module, n=norms: _fuse_silu(m, n, backend))
            fused.update(id(getattr(module, name)) for name in norms)
        else:
            unfused += 1
    for module in vae.modules():
        if isinstance(module, wan.WanRMS_norm):
            _require_attributes(module, ("channel_first", "scale", "gamma", "bias"))
            channels = module.gamma.shape[0]
            _require(
                module,
                "is not a channel-first norm with sqrt(C) scale and (C, 1, ...) gamma",
                module.channel_first
                and module.gamma.numel() == channels
                and abs(module.scale - channels**0.5) < 1e-6
                and (not isinstance(module.bias, Tensor) or module.bias.numel() == channels),
            )
            _check_forward_free(module)
            if id(module) not in fused:
                steps.append(lambda m=module: _bind_forward(m, _wan_rms_norm_forward, backend))
            report.rms_norms += 1
    if unfused:
        report.left_unpatched.append(
            f"AutoencoderKLWan: the SiLU of {unfused} block(s) stays apart from their RMS norms (their "
            "forward does not apply it right after the norm, as diffusers 0.42's does)"
        )
    return steps


# ---------------------------------------------------------------------------------------------
# Planning and applying


_PATCHED_FORWARDS = frozenset(
    {
        _ada_layer_norm_zero_forward,
        _ada_layer_norm_forward,
        _block_forward,
        _causal_group_norm_forward,
        _resnet_block_forward,
        _encoder_forward,
        _decoder_forward,
        _patcher_forward,
        _unpatcher_forward,
        _wan_rms_norm_forward,
        _wan_rms_norm_silu_forward,
    }
)


def _transformer_blocks(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, _cosmos.CosmosTransformer3DModel):
        _require_attributes(model, ("transformer_blocks", "norm_out", "rope"))
        return list(model.transformer_blocks)
    _require_attributes(model, ("control_blocks", "rope"))
    return list(model.control_blocks)


def _plan_transformer(
    model: nn.Module, attention: bool, adaln: bool, backend: str, precision: str | None, report: PatchReport
):
    blocks = _transformer_blocks(model)
    for block in blocks:
        _check_block(block)
    if attention:
        _check_rope_layout(model)
    final_norm = getattr(model, "norm_out", None)
    if final_norm is not None:
        _check_ada_norm(final_norm, _cosmos.CosmosAdaLayerNorm)
    steps: list[Callable[[], None]] = []
    for block in blocks:
        if attention:
            for attn in (block.attn1, block.attn2):
                steps.append(lambda a=attn: _patch_attention(a, backend, precision))
                report.attention_processors += 1
        if adaln:
            steps.append(lambda b=block: _bind_forward(b, _block_forward, backend))
            report.blocks += 1
            for norm in (block.norm1, block.norm2, block.norm3):
                steps.append(lambda n=norm: _bind_forward(n, _ada_layer_norm_zero_forward, backend))
                report.adaln_norms += 1
    if adaln and final_norm is not None:
        steps.append(lambda: _bind_forward(final_norm, _ada_layer_norm_forward, backend))
        report.adaln_norms += 1
    if adaln:
        laid_out = [*blocks, *([final_norm] if final_norm is not None else [])]
        steps.append(lambda: _install_frame_layout(model, laid_out))
    if attention and isinstance(model, _cosmos.CosmosTransformer3DModel):
        # context_parallel's settings survive a re-apply (which removes the hooks first).
        cp_state = (model.__dict__.get("cp_group"), model.__dict__.get("cp_attention"))
        steps.append(lambda: diffusers_context_parallel.install(model, *cp_state))
    return steps


def _models(obj: object) -> list[nn.Module]:
    """The diffusers models in ``obj`` (itself, or a pipeline's components); TypeError if none."""
    if isinstance(obj, _supported_model_classes()):
        return [obj]
    found = [getattr(obj, name, None) for name in PIPELINE_COMPONENTS]
    models = [m for m in found if isinstance(m, _supported_model_classes())]
    if not models or isinstance(obj, nn.Module):
        raise TypeError(
            f"apply_cosmos_kernels: obj must be one of {', '.join(SUPPORTED_CLASSES)}; got "
            f"{type(obj).__module__}.{type(obj).__qualname__}"
        )
    return models


def _supported_model_classes() -> tuple[type, ...]:
    return (
        _cosmos.CosmosTransformer3DModel,
        diffusers.CosmosControlNetModel,
        diffusers.AutoencoderKLCosmos,
        diffusers.AutoencoderKLWan,
    )


def _plan(
    model: nn.Module,
    attention: bool,
    adaln: bool,
    vae: bool,
    backend: str,
    precision: str | None,
    report: PatchReport,
):
    if isinstance(model, _cosmos.CosmosTransformer3DModel | diffusers.CosmosControlNetModel):
        return _plan_transformer(model, attention, adaln, backend, precision, report)
    if not vae:
        return []
    if isinstance(model, diffusers.AutoencoderKLWan):
        return _plan_wan_vae(model, backend, report)
    _check_vae(model)
    return _plan_vae(model, backend, report)


def _check_options(attention: object, adaln: object, vae: object, backend: object, precision: object) -> None:
    for name, value in (("attention", attention), ("adaln", adaln), ("vae", vae)):
        if not isinstance(value, bool):
            raise TypeError(f"apply_cosmos_kernels: {name} must be a bool, got {type(value).__name__}")
    if backend not in ("auto", "cuda", "triton", "torch"):
        raise ValueError(
            f"apply_cosmos_kernels: backend must be 'auto', 'cuda', 'triton' or 'torch', got {backend!r}"
        )
    check_precision("apply_cosmos_kernels", precision, "attention_precision")


def apply_cosmos_kernels(
    obj: Any,
    *,
    attention: bool = True,
    adaln: bool = True,
    vae: bool = True,
    backend: str = "auto",
    attention_precision: str | None = None,
) -> Any:
    """Patch a diffusers Cosmos model or pipeline in place to run on our fused ops; returns ``obj``.

    Args:
        obj: a ``CosmosTransformer3DModel``, ``CosmosControlNetModel``, ``AutoencoderKLCosmos``,
            ``AutoencoderKLWan``, or a pipeline holding them as ``.transformer``/``.controlnet``/``.vae``.
        attention: the Cosmos attention processors -> ``ops.attention`` (QK-norm + RoPE fused).
        adaln: the AdaLN norms and block forwards -> ``ops.adaln_modulate``/``gated_residual_adaln``.
        vae: ``AutoencoderKLCosmos``'s GroupNorm+SiLU and Haar patcher -> our ops.
        backend: the ops' backend ("auto" picks the fastest for the tensors' device).
        attention_precision: None (exact), or "qk-int8" / "qk-int8-pv-fp8" for 8-bit attention in
            the patched processors (inference only; not under context parallelism).
    Returns:
        ``obj``, patched. What was patched is logged and kept in ``obj.cosmos_kernels_patches``
        (a :class:`PatchReport`). Applying again replaces the patches (the options may change);
        :func:`remove_cosmos_kernels` restores the unpatched modules.
    Raises:
        TypeError: ``obj`` is none of the supported objects, or an option has the wrong type.
        UnsupportedDiffusersError: the installed diffusers' classes are not the expected shape
            (raised before anything is patched).
    """
    _check_options(attention, adaln, vae, backend, attention_precision)
    models = _models(obj)
    for model in models:
        for module in model.modules():
            if _patch_target(module):
                _check_forward_free(module)
    report = PatchReport()
    steps: list[Callable[[], None]] = []
    model_reports = []
    for model in models:
        model_report = PatchReport()
        steps.extend(_plan(model, attention, adaln, vae, backend, attention_precision, model_report))
        model_reports.append(model_report)
        report.add(model_report)
    # Every check has passed: only now does anything change.
    for model in models:
        _remove_from_model(model)
    for step in steps:
        step()
    for model, model_report in zip(models, model_reports, strict=True):
        setattr(model, REPORT_ATTRIBUTE, model_report)
    if len(models) > 1 or models[0] is not obj:
        setattr(obj, REPORT_ATTRIBUTE, report)
    logger.info("%s: %s", type(obj).__name__, report)
    return obj


def _patch_target(module: nn.Module) -> bool:
    targets = (
        _cosmos.CosmosTransformerBlock,
        _cosmos.CosmosAdaLayerNormZero,
        _cosmos.CosmosAdaLayerNorm,
        _kl_cosmos.CosmosResnetBlock3d,
        _kl_cosmos.CosmosCausalGroupNorm,
        _kl_cosmos.CosmosEncoder3d,
        _kl_cosmos.CosmosDecoder3d,
        _kl_cosmos.CosmosPatchEmbed3d,
        _kl_cosmos.CosmosUnpatcher3d,
    )
    return isinstance(module, targets)


def _remove_from_model(model: nn.Module) -> int:
    removed = 0
    if diffusers_context_parallel.HOOKS_ATTRIBUTE in model.__dict__:
        diffusers_context_parallel.uninstall(model)
    _uninstall_frame_layout(model)
    for module in model.modules():
        if hasattr(module, "processor") and _unpatch_attention(module):
            removed += 1
        if _unbind_forward(module):
            removed += 1
        if _unfuse_silu(module):
            removed += 1
    model.__dict__.pop(REPORT_ATTRIBUTE, None)
    return removed


def remove_cosmos_kernels(obj: Any) -> Any:
    """Undo :func:`apply_cosmos_kernels` on ``obj`` (a no-op where nothing is patched); returns ``obj``."""
    for model in _models(obj):
        _remove_from_model(model)
    if isinstance(getattr(obj, "__dict__", None), dict):
        obj.__dict__.pop(REPORT_ATTRIBUTE, None)
    return obj


def patch_report(obj: Any) -> PatchReport | None:
    """The :class:`PatchReport` of the last :func:`apply_cosmos_kernels` on ``obj``, None if unpatched."""
    return getattr(obj, REPORT_ATTRIBUTE, None)


__all__ = [
    "SUPPORTED_CLASSES",
    "CosmosKernelsAttnProcessor",
    "PatchReport",
    "UnsupportedDiffusersError",
    "apply_cosmos_kernels",
    "patch_report",
    "remove_cosmos_kernels",
]
