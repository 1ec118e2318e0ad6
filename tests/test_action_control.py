"""Action-conditioned Video2World (models.dit_action): the network against a transcription of
cosmos-predict1's forward_before_blocks action path and NeMo's, Cosmos's action scaling, the 7B
parameter count, checkpoint keys, the pipeline end to end, the pushed-ball data, and bad input."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import rel_error

from cosmos_kernels.data.physics import PhysicsConfig, physics_clip
from cosmos_kernels.diffusion import UncertaintyNet
from cosmos_kernels.models import (
    ACTION_SCALE,
    ActionConditionalDIT,
    build_dit,
    build_tokenizer,
    load_cosmos_state_dict,
    scale_actions,
)
from cosmos_kernels.pipelines import HashTextEncoder, SamplingOptions, Video2WorldPipeline
from cosmos_kernels.training import DataConfig, Stage, TrainConfig, train

FAST = SamplingOptions(num_steps=2, guidance=1.0)


def randomized(model, seed=0, std=0.2):
    """Every weight random (Cosmos's init zeroes each block's last modulation Linear)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * std)
            if name.endswith(("to_q.1.weight", "to_k.1.weight", "affline_norm.weight")):
                p.add_(1.0)
    return model


def network_inputs(net, batch=2, frames=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    c = net.config
    x = torch.randn(batch, c.latent_channels, frames, 4, 6, generator=gen, dtype=torch.float64)
    timesteps = torch.randn(batch, generator=gen, dtype=torch.float64)
    context = torch.randn(batch, 5, c.crossattn_emb_channels, generator=gen, dtype=torch.float64)
    mask = torch.zeros(batch, 1, frames, 4, 6, dtype=torch.float64)
    mask[:, :, 0] = 1
    action = torch.randn(batch, 4, 7, generator=gen, dtype=torch.float64)
    return x, timesteps, context, mask, action


def _mlp(state, prefix, x, approximate):
    """Cosmos's Mlp (timm) / NeMo's ActionControlTorchMlp: fc1 -> GELU -> fc2."""
    hidden = F.gelu(
        F.linear(x, state[f"{prefix}.fc1.weight"], state[f"{prefix}.fc1.bias"]), approximate=approximate
    )
    return F.linear(hidden, state[f"{prefix}.fc2.weight"], state[f"{prefix}.fc2.bias"])


def cosmos_action_embeddings(net, timesteps, action):
    """cosmos-predict1 general_dit_action.py ActionConditionalVideoExtendGeneralDIT.forward_before_blocks
    (lines 420-431, 469-471), transcribed: (affline_emb_B_D after affline_norm, adaln_lora_B_3D)."""
    state = net.state_dict()
    timesteps_B_D, adaln_lora_B_3D = net.t_embedder(timesteps.flatten())
    affline_emb_B_D = timesteps_B_D
    action = action[:, 0, :]
    action_embedding_B_D = _mlp(state, "action_embedder_B_D", action, "tanh")
    action_embedding_B_3D = _mlp(state, "action_embedder_B_3D", action, "tanh")
    timesteps_B_D = timesteps_B_D + action_embedding_B_D  # as written: never read again
    adaln_lora_B_3D = adaln_lora_B_3D + action_embedding_B_3D
    affline_emb_B_D = net.affline_norm(affline_emb_B_D)
    return affline_emb_B_D, adaln_lora_B_3D


def nemo_action_embeddings(net, timesteps, action):
    """NeMo dit_model_7b.py DiTCrossAttentionActionExtendModel7B.forward, transcribed (action (B, 7),
    ActionControlTorchMlp with nn.GELU's exact default)."""
    state = net.state_dict()
    timesteps_B_D, adaln_lora_B_3D = net.t_embedder(timesteps.flatten())
    affline_emb_B_D = timesteps_B_D
    action_control_condition = action[:, 0, :]
    action_embed = _mlp(state, "action_embedder_B_D", action_control_condition, "none")
    action_embed_3d = _mlp(state, "action_embedder_B_3D", action_control_condition, "none")
    affline_emb_B_D = affline_emb_B_D + action_embed
    adaln_lora_B_3D = adaln_lora_B_3D + action_embed_3d
    return net.affline_norm(affline_emb_B_D), adaln_lora_B_3D


TRANSCRIPTIONS = {"predict1": cosmos_action_embeddings, "nemo": nemo_action_embeddings}


def plain_twin(net, embeddings, action):
    """A plain Video2World GeneralDIT with ``net``'s weights whose time embedding is the transcription."""
    plain = build_dit("tiny-video2world").double()
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("action_embedder")}
    plain.load_state_dict(state)
    plain.time_embedding = lambda timesteps: embeddings(net, timesteps, action)
    return plain


@pytest.mark.parametrize("variant", ["predict1", "nemo"])
def test_network_matches_the_transcribed_action_path(variant):
    net = randomized(build_dit("tiny-video2world-action", action_conditioning=variant)).double()
    x, timesteps, context, mask, action = network_inputs(net)
    with torch.no_grad():
        ours = net.time_embedding(timesteps, action=action)
        theirs = TRANSCRIPTIONS[variant](net, timesteps, action)
        for a, b in zip(ours, theirs, strict=True):
            assert rel_error(a, b) < 1e-12
        out = net(x, timesteps, context, fps=24.0, condition_video_input_mask=mask, action=action)
        twin = plain_twin(net, TRANSCRIPTIONS[variant], action)
        ref = twin(x, timesteps, context, fps=24.0, condition_video_input_mask=mask)
        assert rel_error(out, ref) < 1e-12
        # Only the first transition counts; a (B, 7) action is that transition.
        later = action.clone()
        later[:, 1:] += 1
        assert torch.equal(
            net(x, timesteps, context, fps=24.0, condition_video_input_mask=mask, action=later), out
        )
        one = net(x, timesteps, context, fps=24.0, condition_video_input_mask=mask, action=action[:, 0])
        assert torch.equal(one, out)
        other = net(x, timesteps, context, fps=24.0, condition_video_input_mask=mask, action=action + 0.5)
        assert rel_error(other, out) > 1e-3


def test_predict1_main_action_mlp_is_dead_and_nemo_is_not():
    for variant, dead in (("predict1", True), ("nemo", False)):
        net = randomized(build_dit("tiny-video2world-action", action_conditioning=variant), std=0.1)
        x, timesteps, context, mask, action = (t.float() for t in network_inputs(net))
        net(x, timesteps, context, condition_video_input_mask=mask, action=action).square().mean().backward()
        silent = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        expected = [f"action_embedder_B_D.{k}" for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias")]
        assert silent == (expected if dead else []), variant


def test_action_mlp_shapes_follow_the_sources():
    c = build_dit("tiny-video2world-action").config
    d = c.model_channels
    shapes = lambda net: {k: tuple(v.shape) for k, v in net.state_dict().items() if "action" in k}  # noqa: E731
    assert shapes(build_dit("tiny-video2world-action")) == {
        "action_embedder_B_D.fc1.weight": (4 * d, 7),
        "action_embedder_B_D.fc1.bias": (4 * d,),
        "action_embedder_B_D.fc2.weight": (d, 4 * d),
        "action_embedder_B_D.fc2.bias": (d,),
        "action_embedder_B_3D.fc1.weight": (4 * d, 7),
        "action_embedder_B_3D.fc1.bias": (4 * d,),
        "action_embedder_B_3D.fc2.weight": (3 * d, 4 * d),
        "action_embedder_B_3D.fc2.bias": (3 * d,),
    }
    nemo = shapes(build_dit("tiny-video2world-action", action_conditioning="nemo"))
    assert nemo["action_embedder_B_D.fc1.weight"] == (d, 7) and nemo["action_embedder_B_D.fc2.weight"] == (
        d,
        d,
    )
    assert nemo["action_embedder_B_3D.fc2.weight"] == (3 * d, 4 * d)


def _mlp_count(inputs, hidden, out):
    return inputs * hidden + hidden + hidden * out + out


@pytest.mark.parametrize("variant", ["predict1", "nemo"])
def test_7b_builds_on_meta_with_the_config_parameter_count(variant):
    with torch.device("meta"):
        net = build_dit("cosmos-7b-video2world-action", action_conditioning=variant)
        base = sum(p.numel() for p in build_dit("cosmos-7b-video2world").parameters())
    assert isinstance(net, ActionConditionalDIT)
    c = net.config
    d, a = c.model_channels, c.action_dim
    assert (d, a, c.in_channels, c.video_extend) == (4096, 7, 17, True)
    main = _mlp_count(a, 4 * d, d) if variant == "predict1" else _mlp_count(a, d, d)
    count = sum(p.numel() for p in net.parameters())
    assert count == base + main + _mlp_count(a, 4 * d, 3 * d)
    if variant == "predict1":  # 7 -> 16384 -> 4096 and 7 -> 16384 -> 12288
        assert count - base == 67_244_032 + 201_469_952


def test_load_cosmos_state_dict_takes_the_action_keys():
    source = randomized(build_dit("tiny-video2world-action"))
    sd = {f"net.{k}": v.clone() for k, v in source.state_dict().items()}
    sd |= {
        "logvar.0.freqs": torch.randn(128),
        "logvar.0.phases": torch.randn(128),
        "logvar.1.weight": torch.randn(1, 128),
    }
    net = build_dit("tiny-video2world-action")
    load_cosmos_state_dict(net, sd, logvar=UncertaintyNet())
    assert torch.equal(net.action_embedder_B_3D.fc2.weight, source.action_embedder_B_3D.fc2.weight)
    with torch.device("meta"):
        meta = build_dit("tiny-video2world-action")
    load_cosmos_state_dict(meta, sd)
    assert not meta.action_embedder_B_D.fc1.weight.is_meta
    del sd["net.action_embedder_B_D.fc1.bias"]
    with pytest.raises(ValueError, match=r"missing key 'net\.action_embedder_B_D\.fc1\.bias'"):
        load_cosmos_state_dict(build_dit("tiny-video2world-action"), sd)
    with pytest.raises(ValueError, match=r"unexpected key 'net\.action_embedder_B_D\.fc1\.weight'"):
        load_cosmos_state_dict(build_dit("tiny-video2world"), sd)


def test_scale_actions():
    raw = torch.tensor([[0.01, -0.02, 0.03, 0.1, 0.2, -0.3, 1.0]])
    scaled = scale_actions(raw)
    assert ACTION_SCALE == (20.0, 20.0, 20.0, 20.0, 20.0, 20.0, 1.0)
    torch.testing.assert_close(scaled, torch.tensor([[0.2, -0.4, 0.6, 2.0, 4.0, -6.0, 1.0]]))
    assert scale_actions([0, 0, 0, 0, 0, 0, 1]).dtype == torch.float32
    assert scale_actions(raw.double()).dtype == torch.float64
    with pytest.raises(ValueError, match=r"scale_actions: actions must be \(\.\.\., 7\)"):
        scale_actions(torch.zeros(2, 6))


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)
    tokenizer = build_tokenizer("tiny-cv8x8x8").eval()
    net = randomized(build_dit("tiny-video2world-action"), std=0.05).eval()
    return Video2WorldPipeline(net, HashTextEncoder(max_length=4), tokenizer)


def test_pipeline_follows_the_action(pipeline):
    given = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    actions = scale_actions(torch.randn(2, 8, 7) * 0.05)
    out = pipeline(["a ball", "a ball"], given, num_frames=9, options=FAST, actions=actions)
    assert out.video.shape == (2, 3, 9, 32, 32) and out.latents.shape == (2, 16, 2, 4, 4)
    first = pipeline(["a ball", "a ball"], given, num_frames=9, options=FAST, actions=actions[:, 0])
    assert torch.equal(first.latents, out.latents)
    other = pipeline(["a ball", "a ball"], given, num_frames=9, options=FAST, actions=-actions)
    assert not torch.allclose(other.latents[:, :, 1:], out.latents[:, :, 1:], atol=1e-4)


@pytest.mark.parametrize(
    ("actions", "error", "message"),
    [
        (None, ValueError, r"action-conditioned: pass actions \(B=1, num_frames - 1 = 8, 7\) or \(B=1, 7\)"),
        (
            torch.zeros(1, 8, 6),
            ValueError,
            r"actions must be \(B=1, num_frames - 1 = 8, 7\).*got shape \(1, 8, 6\)",
        ),
        (torch.zeros(1, 16, 7), ValueError, "one action per transition.*got 16 for 9 frames"),
        (torch.zeros(2, 7), ValueError, r"\(B=1, 7\), got shape \(2, 7\)"),
        (torch.zeros(1, 8, 7, dtype=torch.long), TypeError, "floating-point"),
    ],
)
def test_pipeline_bad_actions(pipeline, actions, error, message):
    with pytest.raises(error, match=message):
        pipeline("a ball", torch.zeros(1, 3, 1, 32, 32), num_frames=9, options=FAST, actions=actions)


def test_bad_action_input_and_config():
    tokenizer = build_tokenizer("tiny-cv8x8x8")
    plain = Video2WorldPipeline(build_dit("tiny-video2world"), HashTextEncoder(max_length=4), tokenizer)
    with pytest.raises(ValueError, match="actions are for an action-conditioned network"):
        plain("a ball", torch.zeros(1, 3, 1, 32, 32), num_frames=9, options=FAST, actions=torch.zeros(1, 7))
    net = build_dit("tiny-video2world-action")
    x, timesteps, context, mask, action = (t.float() for t in network_inputs(net))
    with pytest.raises(ValueError, match=r"action \(B=2, n, 7\) or \(B=2, 7\) is required"):
        net(x, timesteps, context, condition_video_input_mask=mask)
    with pytest.raises(ValueError, match=r"action must be \(B=2, n, 7\) or \(B=2, 7\), got \(2, 4, 3\)"):
        net(x, timesteps, context, condition_video_input_mask=mask, action=action[..., :3])
    with pytest.raises(TypeError, match="unexpected input"):
        build_dit("tiny-video2world")(x, timesteps, context, condition_video_input_mask=mask, action=action)
    with pytest.raises(ValueError, match="action_conditioning must be one of"):
        build_dit("tiny-video2world-action", action_conditioning="both")
    with pytest.raises(ValueError, match="needs use_adaln_lora=True"):
        build_dit("tiny-video2world-action", use_adaln_lora=False)
    with pytest.raises(ValueError, match="action_dim must be an int >= 1"):
        build_dit("tiny-video2world-action", action_dim=0)


def test_pushed_clip_differs_only_by_the_push():
    config = PhysicsConfig(min_balls=1, max_balls=1, speed=(0.0, 0.0), vertical_speed=(0.0, 0.0), gravity=0.0)
    still, _, rest = physics_clip(9, 32, 32, [3, 1], config)
    pushed, _, scene = physics_clip(9, 32, 32, [3, 1], config, push=(0.03, -0.01))
    assert torch.equal(still[:, 0], pushed[:, 0]) and not torch.equal(still[:, 1], pushed[:, 1])
    np.testing.assert_allclose(rest.positions[:, 0], rest.positions[0, 0][None].repeat(9, 0))
    np.testing.assert_allclose(scene.velocities[0, 0], [0.03 * 32, -0.01 * 32])
    step = scene.positions[1, 0] - scene.positions[0, 0]
    assert math.isclose(step[0], 0.96) and math.isclose(step[1], -0.32)
    with pytest.raises(ValueError, match=r"push must be two finite numbers \(dx, dy\)"):
        physics_clip(9, 32, 32, 0, config, push=(1.0, 2.0, 3.0))


def test_trainer_feeds_the_actions():
    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def bucket_key(self, index):
            return "1,1", 17

        def __getitem__(self, index):
            gen = torch.Generator().manual_seed(index)
            return {
                "latent": torch.randn(16, 3, 4, 4, generator=gen),
                "caption": "a ball",
                "action": torch.randn(16, 7, generator=gen),
            }

    config = TrainConfig(
        stages=(Stage(resolution=32, frames=17, steps=2, lr=1e-3, batch_size=2),),
        model="tiny-video2world-action",
        tokenizer=None,
        data=DataConfig(length=1),
        precision="fp32",
        video2world=True,
    )
    result = train(config, HashTextEncoder(max_length=4), datasets=lambda s, d: Clips(), progress=False)
    assert len(result.losses) == 2 and all(math.isfinite(x) for x in result.losses)
    assert isinstance(result.module.net, ActionConditionalDIT)
    assert result.module.net.action_embedder_B_3D.fc1.weight.grad is not None


def test_cli_generate_with_an_actions_file(tmp_path, capsys):
    from cosmos_kernels import cli
    from cosmos_kernels.video_io import read_video, write_video

    given = tmp_path / "given.mp4"
    write_video(given, torch.randint(0, 255, (1, 32, 32, 3), dtype=torch.uint8), 24)
    np.save(tmp_path / "actions.npy", np.zeros((8, 7), dtype=np.float32))
    (tmp_path / "narrow.json").write_text("[0.5, 0.0, 0.0]")
    argv = [
        "generate",
        "--model",
        "tiny-video2world-action",
        "--prompt",
        "a ball",
        "--input-video",
        str(given),
    ]
    argv += ["--frames", "9", "--steps", "1", "--tokenizer", "tiny-cv8x8x8", "--out", str(tmp_path / "o.mp4")]
    assert cli.main([*argv, "--actions", str(tmp_path / "actions.npy")]) == 0
    assert read_video(tmp_path / "o.mp4")[0].shape == (9, 32, 32, 3)
    capsys.readouterr()
    assert cli.main([*argv, "--actions", str(tmp_path / "narrow.json")]) == 2
    assert (
        r"actions must be (B=1, num_frames - 1 = 8, 7) or (B=1, 7), got shape (1, 3)"
        in capsys.readouterr().err
    )
    assert cli.main(argv) == 2
    assert "action-conditioned: pass actions" in capsys.readouterr().err
