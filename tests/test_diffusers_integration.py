"""apply_cosmos_kernels on diffusers' own Cosmos modules: same outputs and gradients, reversible.

Every model is built here from a tiny config with random weights; nothing is downloaded. diffusers'
modules are the reference: each test runs an unpatched model and a patched deep copy of it.

torchvision: diffusers' Cosmos transformer and ControlNet use it only for a nearest resize of the
padding mask (``transforms.functional.resize``), imported at module level when torchvision is
installed. No torchvision build matches the pinned CPU torch, so where diffusers found none, the
``transforms`` fixture gives those two modules a ``transforms`` global made of ``F.interpolate(...,
mode="nearest")`` (what torchvision's tensor resize calls for NEAREST) for the test's duration.
diffusers' code under test is not replaced: it still runs its own resize call, on the stand-in.
"""

import copy
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import HAS_CUDA, HAS_TRITON

diffusers = pytest.importorskip("diffusers", reason="the diffusers integration needs diffusers installed")
from diffusers.models.controlnets import controlnet_cosmos  # noqa: E402
from diffusers.models.transformers import transformer_cosmos  # noqa: E402

from cosmos_kernels.integrations.diffusers import (  # noqa: E402
    CosmosKernelsAttnProcessor,
    UnsupportedDiffusersError,
    apply_cosmos_kernels,
    patch_report,
    remove_cosmos_kernels,
)

RTOL = 1e-4


def _nearest_resize(img: torch.Tensor, size: list[int], interpolation: str = "nearest") -> torch.Tensor:
    return F.interpolate(img, size=size, mode=interpolation)


TRANSFORMS_STAND_IN = types.SimpleNamespace(
    functional=types.SimpleNamespace(resize=_nearest_resize),
    InterpolationMode=types.SimpleNamespace(NEAREST="nearest"),
)


@pytest.fixture(autouse=True)
def transforms(monkeypatch):
    for module in (transformer_cosmos, controlnet_cosmos):
        if not hasattr(module, "transforms"):
            monkeypatch.setattr(module, "transforms", TRANSFORMS_STAND_IN, raising=False)


HEADS, HEAD_DIM, TEXT_DIM = 2, 16, 16
WIDTH = HEADS * HEAD_DIM


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """diffusers initializes norm weights, position tables and some projections to constants (ones,
    zeros); random values there exercise every path. Other weights keep their (random) init."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() == 1 or bool((p == p.flatten()[0]).all()):
                p.add_(torch.randn_like(p) * 0.2)
    return model


def _transformer(variant: str, head_dim: int = HEAD_DIM) -> diffusers.CosmosTransformer3DModel:
    common = dict(
        out_channels=4,
        num_attention_heads=HEADS,
        attention_head_dim=head_dim,
        num_layers=2,
        mlp_ratio=2.0,
        text_embed_dim=TEXT_DIM,
        adaln_lora_dim=8,
        max_size=(8, 16, 16),
    )
    configs = {
        "cosmos1": dict(in_channels=4, extra_pos_embed_type="learnable"),
        "predict2": dict(in_channels=5, extra_pos_embed_type=None, rope_scale=(1.0, 3.0, 3.0)),
        "predict2.5": dict(
            in_channels=5,
            extra_pos_embed_type=None,
            use_crossattn_projection=True,
            crossattn_proj_in_channels=24,
            encoder_hidden_states_channels=TEXT_DIM,
        ),
        "transfer2.5": dict(
            in_channels=5,
            extra_pos_embed_type=None,
            controlnet_block_every_n=1,
            img_context_dim_in=8,
            img_context_num_tokens=3,
            img_context_dim_out=HEADS * head_dim,
        ),
    }
    return _randomize(diffusers.CosmosTransformer3DModel(**common, **configs[variant]))


def _controlnet() -> diffusers.CosmosControlNetModel:
    return _randomize(
        diffusers.CosmosControlNetModel(
            n_controlnet_blocks=2,
            in_channels=7,
            latent_channels=6,
            model_channels=WIDTH,
            num_attention_heads=HEADS,
            attention_head_dim=HEAD_DIM,
            mlp_ratio=2.0,
            text_embed_dim=TEXT_DIM,
            adaln_lora_dim=8,
            max_size=(8, 16, 16),
            img_context_dim_in=8,
            img_context_dim_out=WIDTH,
        ),
        seed=1,
    )


def _inputs(variant: str, batch: int = 2, frames: int = 3) -> dict:
    torch.manual_seed(2)
    latents = torch.randn(batch, 4, frames, 8, 8)
    inputs = {"hidden_states": latents, "padding_mask": torch.zeros(1, 1, 8, 8)}
    if variant == "cosmos1":
        inputs.update(
            timestep=torch.rand(batch), encoder_hidden_states=torch.randn(batch, 5, TEXT_DIM), fps=24
        )
        return inputs
    # Predict2 and later: per-frame timesteps (B, 1, T, 1, 1) and a condition-mask channel.
    inputs["timestep"] = torch.rand(batch, 1, frames, 1, 1)
    inputs["condition_mask"] = (torch.rand(batch, 1, frames, 8, 8) > 0.5).float()
    text = torch.randn(batch, 5, 24 if variant == "predict2.5" else TEXT_DIM)
    if variant == "transfer2.5":
        inputs["encoder_hidden_states"] = (text, torch.randn(batch, 3, 8))
    else:
        inputs["encoder_hidden_states"] = text
    return inputs


def _leaves(inputs: dict) -> list[torch.Tensor]:
    out = []
    for value in inputs.values():
        for t in value if isinstance(value, tuple | list) else (value,):
            if isinstance(t, torch.Tensor) and t.requires_grad:
                out.append(t)
    return out


def _assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str, floor: float = 1e-30) -> None:
    """Relative error, against ``floor`` where the reference is smaller: a gradient that is zero in
    exact arithmetic (the bias of a softmax's keys) holds only rounding noise."""
    error = ((ours - theirs).norm() / theirs.norm().clamp_min(floor)).item()
    assert error < RTOL, f"{what}: relative error {error:.2e} >= {RTOL}"


def _leaf(value):
    """A fresh leaf that collects its gradient, for every floating tensor input (nested in tuples/lists)."""
    if isinstance(value, tuple | list):
        return type(value)(_leaf(v) for v in value)
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.detach().clone().requires_grad_()
    return value


def _run(model, inputs: dict, cotangent_seed: int = 3):
    inputs = {k: _leaf(v) for k, v in inputs.items()}
    model.zero_grad(set_to_none=True)
    out = model(**inputs, return_dict=False)[0]
    outs = out if isinstance(out, list) else [out]
    torch.manual_seed(cotangent_seed)
    loss = sum((o * torch.randn_like(o)).sum() for o in outs)
    loss.backward()
    grads = {
        n.removeprefix("_orig_mod."): p.grad.clone()
        for n, p in model.named_parameters()
        if p.grad is not None
    }
    grads.update({f"input {i}": t.grad.clone() for i, t in enumerate(_leaves(inputs)) if t.grad is not None})
    return [o.detach() for o in outs], grads


def _assert_grads_close(grads: dict, ref_grads: dict) -> None:
    assert grads.keys() == ref_grads.keys()
    floor = 1e-3 * max(g.norm().item() for g in ref_grads.values())
    for name, grad in ref_grads.items():
        _assert_close(grads[name], grad, f"gradient of {name}", floor)


def _compare(reference, patched, inputs: dict) -> None:
    ref_out, ref_grads = _run(reference, inputs)
    out, grads = _run(patched, inputs)
    for i, (a, b) in enumerate(zip(out, ref_out, strict=True)):
        _assert_close(a, b, f"output {i}")
    _assert_grads_close(grads, ref_grads)


@pytest.mark.parametrize("variant", ["cosmos1", "predict2", "predict2.5", "transfer2.5"])
def test_patched_transformer_matches_diffusers(variant):
    model = _transformer(variant)
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    report = patch_report(patched)
    assert (report.attention_processors, report.blocks, report.adaln_norms) == (4, 2, 7)
    inputs = _inputs(variant)
    if variant == "transfer2.5":
        torch.manual_seed(4)
        inputs["block_controlnet_hidden_states"] = [torch.randn(2, 3 * 16, WIDTH) for _ in range(2)]
    _compare(model, patched, inputs)


@pytest.mark.skipif(not HAS_TRITON or HAS_CUDA, reason="Triton kernels on CPU run in the interpreter only")
@pytest.mark.parametrize("variant", ["cosmos1", "predict2"])
def test_patched_transformer_on_triton_kernels_matches_diffusers(variant):
    """The Triton kernels (interpreted here) under the same patches; they take head dims >= 32."""
    model = _transformer(variant, head_dim=32)
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="triton")
    _compare(model, patched, _inputs(variant, frames=2))


def test_patched_controlnet_matches_diffusers():
    model = _controlnet()
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    assert patch_report(patched).blocks == 2
    inputs = _inputs("transfer2.5")
    inputs["latents"] = inputs.pop("hidden_states")
    inputs["controls_latents"] = torch.randn(2, 4, 3, 8, 8)
    _compare(model, patched, inputs)


ADALN_NORMS = (transformer_cosmos.CosmosAdaLayerNormZero, transformer_cosmos.CosmosAdaLayerNorm)


def _modulation_rows(model) -> list[int]:
    """Rows each AdaLN-LoRA MLP of ``model`` computes per sample in one forward."""
    rows = []
    for module in model.modules():
        if isinstance(module, ADALN_NORMS):
            module.linear_1.register_forward_hook(
                lambda _, args, out: rows.append(args[0].shape[1] if args[0].dim() == 3 else 1)
            )
    return rows


def _per_frame_model(model_kind: str, frames: int = 3):
    """A Predict2 transformer or a Transfer2.5 ControlNet, and inputs with per-frame timesteps."""
    model = _controlnet() if model_kind == "controlnet" else _transformer("predict2")
    inputs = _inputs("predict2", frames=frames)
    if model_kind == "controlnet":
        inputs["latents"] = inputs.pop("hidden_states")
        inputs["controls_latents"] = torch.randn(2, 4, frames, 8, 8)
        inputs["encoder_hidden_states"] = (inputs["encoder_hidden_states"], torch.randn(2, 3, 8))
    return model, inputs


@pytest.mark.parametrize("model_kind", ["predict2", "controlnet"])
def test_per_frame_timesteps_modulate_once_per_frame(model_kind):
    """diffusers repeats a per-frame timestep's modulation input over the frame's H'W' tokens; the
    patched blocks and final norm compute it once per frame and give our ops (B, T, D) rows. The
    values are diffusers' (compared with gradients in test_patched_*_matches_diffusers, which run
    per-frame timesteps); here, which rows are computed: frames, not tokens."""
    frames, tokens = 3, 3 * 16
    model, inputs = _per_frame_model(model_kind, frames)
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    reference_rows, rows = _modulation_rows(model), _modulation_rows(patched)
    with torch.no_grad():
        model(**inputs)
        patched(**inputs)
    assert reference_rows and set(reference_rows) == {tokens}
    assert len(rows) == len(reference_rows) and set(rows) == {frames}


@pytest.mark.parametrize("model_kind", ["predict2", "controlnet"])
def test_gradient_checkpointing_with_per_frame_timesteps(model_kind):
    """diffusers' checkpointed blocks run again in the backward, after the forward (and the frame
    layout its hooks noted) has ended: the rerun must take the per-frame path again, with the same
    gradients as diffusers'."""
    model, inputs = _per_frame_model(model_kind)
    model.enable_gradient_checkpointing()
    model.train()
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    rows = _modulation_rows(patched)
    _compare(model, patched, inputs)
    assert set(rows) == {3}


def test_regional_compile_with_checkpointing_and_per_frame_timesteps():
    """Blocks compiled one by one (diffusers' compile_repeated_blocks does this) and checkpointed: the
    rerun in the backward takes the forward's per-frame path, with diffusers' gradients."""
    model, inputs = _per_frame_model("predict2", frames=2)
    model.enable_gradient_checkpointing()
    model.train()
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    for block in patched.transformer_blocks:
        block.compile(backend="aot_eager", fullgraph=True)
    _compare(model, patched, inputs)


def test_per_token_modulation_where_the_layout_is_unknown():
    """A block called outside the model's forward (or after a failed forward) keeps per-token rows."""
    model = _transformer("predict2")
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    with pytest.raises(TypeError):
        patched(**_inputs("predict2"), not_an_argument=1)
    block, reference = patched.transformer_blocks[0], model.transformer_blocks[0]
    torch.manual_seed(5)
    x, timestep, temb = torch.randn(2, 48, WIDTH), torch.randn(2, 48, WIDTH), torch.randn(2, 48, 3 * WIDTH)
    args = (x, torch.randn(2, 5, TEXT_DIM), timestep, temb)
    rows = _modulation_rows(patched)
    with torch.no_grad():
        torch.testing.assert_close(block(*args), reference(*args), rtol=1e-5, atol=1e-5)
    assert set(rows) == {48}


def _processors(model) -> dict:
    return {n: m.processor for n, m in model.named_modules() if isinstance(m, transformer_cosmos.Attention)}


def _attention_module(model) -> torch.nn.Module:
    return model.transformer_blocks[0].attn2


@pytest.mark.parametrize("mask_kind", ["prefix", "holes", "float"])
def test_text_attention_mask_keeps_its_meaning(mask_kind):
    model = _transformer("cosmos1")
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    inputs = _inputs("cosmos1")
    lengths = torch.tensor([5, 2])
    mask = torch.arange(5)[None] < lengths[:, None]
    if mask_kind == "holes":
        mask = mask.clone()
        mask[0, 1] = False
    elif mask_kind == "float":
        mask = torch.where(mask, 0.0, -1e4)
    inputs["attention_mask"] = mask
    _compare(model, patched, inputs)


def test_prefix_mask_runs_on_our_op(monkeypatch):
    model = apply_cosmos_kernels(_transformer("cosmos1"), backend="torch")
    original = _attention_module(model).processor.original
    called = []
    monkeypatch.setattr(type(original), "__call__", lambda *a, **k: called.append(1))
    inputs = _inputs("cosmos1")
    inputs["attention_mask"] = torch.arange(5)[None] < torch.tensor([[5], [3]])
    with torch.no_grad():
        model(**inputs)
    assert not called


def test_remove_restores_and_apply_is_idempotent():
    model = _transformer("cosmos1")
    processors = {n: type(p) for n, p in _processors(model).items()}
    inputs = _inputs("cosmos1")
    with torch.no_grad():
        before = model(**inputs).sample
    assert apply_cosmos_kernels(model, backend="torch") is model
    first = patch_report(model)
    apply_cosmos_kernels(model, backend="torch")
    assert patch_report(model) == first
    assert all(isinstance(p, CosmosKernelsAttnProcessor) for p in _processors(model).values())
    assert isinstance(_attention_module(model).processor.original, transformer_cosmos.CosmosAttnProcessor2_0)
    assert remove_cosmos_kernels(model) is model
    assert {n: type(p) for n, p in _processors(model).items()} == processors
    assert not any("forward" in m.__dict__ for m in model.modules())
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in model.modules())
    assert not any(name.startswith("_cosmos_kernels") for m in model.modules() for name in m.__dict__)
    assert patch_report(model) is None
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).sample, before, rtol=0, atol=0)
    remove_cosmos_kernels(model)  # nothing patched: a no-op


def test_options_select_what_is_patched():
    model = apply_cosmos_kernels(_transformer("cosmos1"), adaln=False, backend="torch")
    report = patch_report(model)
    assert (report.attention_processors, report.blocks, report.adaln_norms) == (4, 0, 0)
    apply_cosmos_kernels(model, attention=False, backend="torch")
    report = patch_report(model)
    assert (report.attention_processors, report.blocks, report.adaln_norms) == (0, 2, 7)
    assert not any(isinstance(p, CosmosKernelsAttnProcessor) for p in _processors(model).values())


def _vae() -> diffusers.AutoencoderKLCosmos:
    return _randomize(
        diffusers.AutoencoderKLCosmos(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            encoder_block_out_channels=(8, 16, 16),
            decode_block_out_channels=(8, 16, 16),
            attention_resolutions=(4,),
            resolution=16,
            num_layers=1,
            patch_size=4,
            latents_mean=None,
            latents_std=None,
        )
    )


def test_patched_cosmos_vae_matches_diffusers():
    vae = _vae()
    patched = apply_cosmos_kernels(copy.deepcopy(vae), backend="torch")
    report = patch_report(patched)
    assert report.haar_transforms == 2 and report.group_norms > 0 and report.vae_blocks > 0
    torch.manual_seed(5)
    video = torch.randn(1, 3, 9, 16, 16, requires_grad=True)
    outs, grads = [], []
    for model in (vae, patched):
        model.zero_grad(set_to_none=True)
        latents = model.encode(video).latent_dist.mode()
        decoded = model.decode(latents).sample
        (latents.square().sum() + (decoded * torch.cos(decoded)).sum()).backward()
        outs.append((latents.detach(), decoded.detach()))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()} | {"video": video.grad.clone()})
        video.grad = None
    for a, b, what in zip(outs[1], outs[0], ("latents", "decoded"), strict=True):
        _assert_close(a, b, what)
    _assert_grads_close(grads[1], grads[0])
    remove_cosmos_kernels(patched)
    assert not any("forward" in m.__dict__ for m in patched.modules())


def test_patched_wan_vae_matches_diffusers():
    vae = _randomize(
        diffusers.AutoencoderKLWan(
            base_dim=8, z_dim=4, dim_mult=[1, 2], num_res_blocks=1, temperal_downsample=[True]
        )
    )
    patched = apply_cosmos_kernels(copy.deepcopy(vae), backend="torch")
    report = patch_report(patched)
    assert report.rms_norms > 0 and not report.left_unpatched
    # Every SiLU follows a norm in diffusers 0.42: the norms apply it, the owners' SiLU is an identity.
    owners = [m for m in patched.modules() if hasattr(m, "nonlinearity")]
    assert owners and all(isinstance(m.nonlinearity, torch.nn.Identity) for m in owners)
    apply_cosmos_kernels(patched, backend="torch")  # applying again gives the same patches
    assert patch_report(patched) == report
    assert all(isinstance(m.nonlinearity, torch.nn.Identity) for m in owners)
    torch.manual_seed(6)
    video = torch.randn(1, 3, 5, 16, 16, requires_grad=True)
    outs, grads = [], []
    for model in (vae, patched):
        model.zero_grad(set_to_none=True)
        latents = model.encode(video).latent_dist.mode()
        decoded = model.decode(latents).sample
        (latents.square().sum() + (decoded * torch.cos(decoded)).sum()).backward()
        outs.append((latents.detach(), decoded.detach()))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()} | {"video": video.grad.clone()})
        video.grad = None
    for a, b, what in zip(outs[1], outs[0], ("latents", "decoded"), strict=True):
        _assert_close(a, b, what)
    _assert_grads_close(grads[1], grads[0])
    remove_cosmos_kernels(patched)
    assert not any("forward" in m.__dict__ for m in patched.modules())
    assert all(isinstance(m.nonlinearity, torch.nn.SiLU) for m in owners)
    assert not any(name.startswith("_cosmos_kernels") for m in patched.modules() for name in m.__dict__)


def _wan_block_forward_with_an_extra_silu(self, x, feat_cache=None, feat_idx=[0]):  # noqa: B006
    h = self.conv_shortcut(x)
    x = self.norm1(x)
    x = self.nonlinearity(x)
    x = self.conv1(x)
    x = self.nonlinearity(x)
    x = self.norm2(x)
    x = self.nonlinearity(x)
    return self.conv2(x) + h


def _wan_block_forward_with_a_norm_used_twice(self, x, feat_cache=None, feat_idx=[0]):  # noqa: B006
    h = self.conv_shortcut(x)
    x = self.norm1(x)
    x = self.nonlinearity(x)
    x = self.conv1(x)
    x = self.norm2(x)
    x = self.nonlinearity(x)
    x = self.conv2(x)
    return x + h + self.norm2(x)


@pytest.mark.parametrize(
    "forward", [_wan_block_forward_with_an_extra_silu, _wan_block_forward_with_a_norm_used_twice]
)
def test_wan_silu_stays_apart_where_the_forward_differs(monkeypatch, forward):
    """A block whose forward applies its SiLU elsewhere than right after its norms, or uses a norm
    without it, keeps both as they are (fused, the latents would differ)."""
    from diffusers.models.autoencoders import autoencoder_kl_wan

    monkeypatch.setattr(autoencoder_kl_wan.WanResidualBlock, "forward", forward)
    vae = _randomize(diffusers.AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1], num_res_blocks=1))
    patched = apply_cosmos_kernels(copy.deepcopy(vae), backend="torch")
    report = patch_report(patched)
    assert "the SiLU of" in report.left_unpatched[0] and "block(s) stays apart" in report.left_unpatched[0]
    blocks = [m for m in patched.modules() if isinstance(m, autoencoder_kl_wan.WanResidualBlock)]
    assert blocks and all(isinstance(b.nonlinearity, torch.nn.SiLU) for b in blocks)
    video = torch.randn(1, 3, 1, 16, 16)
    with torch.no_grad():
        ours, theirs = (m.encode(video).latent_dist.mode() for m in (patched, vae))
    _assert_close(ours, theirs, "latents")


def test_pipeline_components_are_patched():
    pipe = types.SimpleNamespace(transformer=_transformer("cosmos1"), vae=_vae(), text_encoder=None)
    assert apply_cosmos_kernels(pipe, backend="torch") is pipe
    assert patch_report(pipe).attention_processors == 4
    assert patch_report(pipe).haar_transforms == 2
    remove_cosmos_kernels(pipe)
    assert patch_report(pipe) is None and patch_report(pipe.transformer) is None


@pytest.mark.parametrize(
    "obj", [torch.nn.Linear(2, 2), object(), "transformer", types.SimpleNamespace(vae=None)]
)
def test_unsupported_objects_are_refused(obj):
    with pytest.raises(TypeError, match="CosmosTransformer3DModel, CosmosControlNetModel"):
        apply_cosmos_kernels(obj)


@pytest.mark.parametrize("precision", ["qk-int8", "qk-int8-pv-fp8"])
def test_attention_precision_runs_8bit_attention(precision, monkeypatch):
    """attention_precision reaches ops.attention in every patched processor (self, cross, image
    context) and gives diffusers' output within the 8-bit path's error, not bit-equal to exact."""
    from cosmos_kernels import ops

    model = _transformer("transfer2.5", head_dim=32)
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch", attention_precision=precision)
    seen = []
    attention = ops.attention
    monkeypatch.setattr(
        ops, "attention", lambda *a, **k: seen.append(k.get("precision")) or attention(*a, **k)
    )
    inputs = _inputs("transfer2.5")
    inputs["block_controlnet_hidden_states"] = [torch.randn(2, 3 * 16, HEADS * 32) for _ in range(2)]
    with torch.no_grad():
        expected = model(**inputs, return_dict=False)[0]
        out = patched(**inputs, return_dict=False)[0]
    # Two blocks of self-, text and image attention, each at the asked precision.
    assert seen == [precision] * 6
    error = ((out - expected).norm() / expected.norm()).item()
    assert 0 < error < 2e-2
    with pytest.raises(RuntimeError, match="for inference and has no backward"):
        patched(**{k: _leaf(v) for k, v in inputs.items()}, return_dict=False)


def test_bad_options_are_refused():
    model = _transformer("cosmos1")
    with pytest.raises(ValueError, match="backend"):
        apply_cosmos_kernels(model, backend="cudnn")
    with pytest.raises(TypeError, match="attention must be a bool"):
        apply_cosmos_kernels(model, attention="yes")
    with pytest.raises(ValueError, match=r"attention_precision must be None \(exact\) or one of"):
        apply_cosmos_kernels(model, attention_precision="int8")


def test_unexpected_structure_names_the_version_and_patches_nothing(monkeypatch):
    model = _transformer("cosmos1")
    del model.transformer_blocks[1].norm2.norm  # as if a diffusers release had restructured its norms
    with pytest.raises(
        UnsupportedDiffusersError, match=rf"diffusers {diffusers.__version__} .*CosmosAdaLayerNormZero"
    ):
        apply_cosmos_kernels(model)
    assert patch_report(model) is None
    assert not any(isinstance(p, CosmosKernelsAttnProcessor) for p in _processors(model).values())
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_rope_layout_is_checked(monkeypatch):
    model = _transformer("cosmos1")

    def interleaved_tables(self, hidden_states, fps=None):
        # Pairs (2i, 2i+1) share a frequency: the interleaved layout of other RoPE implementations.
        cos, sin = type(self).forward(self, hidden_states, fps)
        half = cos.shape[-1] // 2
        return tuple(t[:, :half].repeat_interleave(2, dim=-1) for t in (cos, sin))

    model.rope.forward = types.MethodType(interleaved_tables, model.rope)
    with pytest.raises(UnsupportedDiffusersError, match="equal halves"):
        apply_cosmos_kernels(model)


def test_compile_fullgraph_of_patched_transformer():
    model = _transformer("predict2")
    patched = apply_cosmos_kernels(copy.deepcopy(model), backend="torch")
    compiled = torch.compile(patched, fullgraph=True, backend="aot_eager")
    inputs = _inputs("predict2", frames=2)
    _compare(model, compiled, inputs)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("variant", ["cosmos1", "predict2"])
def test_patched_transformer_bf16_on_gpu_within_bf16_error(variant):
    """bf16 on the GPU's kernels: the patched model is no further from the float32 model than
    diffusers' own bf16 run is (twice its error, for rounding in other places)."""
    model = _transformer(variant, head_dim=64).cuda()
    inputs = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in _inputs(variant).items()}
    with torch.no_grad():
        exact = model(**inputs).sample
        low = copy.deepcopy(model).to(torch.bfloat16)
        low_inputs = {
            k: v.to(torch.bfloat16) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
            for k, v in inputs.items()
        }
        theirs = low(**low_inputs).sample.float()
        ours = apply_cosmos_kernels(low)(**low_inputs).sample.float()
    their_error = ((theirs - exact).norm() / exact.norm()).item()
    our_error = ((ours - exact).norm() / exact.norm()).item()
    assert our_error <= 2 * their_error + 1e-3, (our_error, their_error)


@pytest.mark.parametrize("variant", ["patched", "unpatched"])
def test_profile_runs_diffusers_transformer(tmp_path, capsys, variant):
    import argparse

    from cosmos_kernels.tools import profiling

    parser = argparse.ArgumentParser()
    profiling.add_profile_arguments(parser)
    shape = ["--latent", "2", "4", "6", "--blocks", "1", "--text-len", "4"]
    steps = ["--steps", "1", "--warmup", "0", "--trace-dir", str(tmp_path)]
    args = parser.parse_args(["--diffusers", variant, *shape, *steps])
    assert profiling.run_profile(args) == 0
    assert f"tiny DiT in diffusers, {variant}" in capsys.readouterr().out


def test_benchmark_cases_time_the_patched_model_against_diffusers():
    """The `bench --only diffusers` block cases at their small CPU shapes (D 128, LoRA 256, 2x8x8
    tokens): ours computes what diffusers does, and the Predict2 case reaches the per-frame modulation
    path, which its GPU figure is about (2 frames: 2 rows; diffusers: 128 rows)."""
    from cosmos_kernels.tools.benchmarking_diffusers import diffusers_cases

    rows = []

    def lora_rows(module, args, output):
        # The AdaLN-LoRA down-projections are the models' only Linear(128, 256).
        if isinstance(module, torch.nn.Linear) and (module.in_features, module.out_features) == (128, 256):
            rows.append(args[0].shape[1] if args[0].dim() == 3 else 1)

    cases = diffusers_cases("quick", torch.float32, "cpu")
    handle = torch.nn.modules.module.register_module_forward_hook(lora_rows)
    try:
        for name, expected in (("cosmos1-7b", ({1}, {1})), ("predict2-2b", ({2}, {128}))):
            case = cases[f"diffusers {name} block fwd"]()
            inputs = case.inputs[0]
            rows.clear()
            ours = case.op(*inputs, backend="torch")
            ours_rows = set(rows)
            rows.clear()
            torch.testing.assert_close(ours, case.eager(*inputs), rtol=1e-4, atol=1e-4)
            assert (ours_rows, set(rows)) == expected, name
    finally:
        handle.remove()
