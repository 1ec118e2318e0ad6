"""dit_from_diffusers / dit_to_diffusers / tokenizer_from_diffusers: same weights, same outputs.

Tiny Cosmos-1.0 models are built from configs with random weights; nothing is downloaded. The
torchvision stand-in for diffusers' padding-mask resize is explained in test_diffusers_integration.py.
"""

import json

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers", reason="the diffusers bridge needs diffusers installed")
from test_diffusers_integration import TRANSFORMS_STAND_IN, _assert_close, _randomize  # noqa: E402

from cosmos_kernels.models import (  # noqa: E402
    GeneralDIT,
    dit_from_diffusers,
    dit_to_diffusers,
    load_diffusers_dir,
    tokenizer_from_diffusers,
)


@pytest.fixture(autouse=True)
def transforms(monkeypatch):
    from diffusers.models.transformers import transformer_cosmos

    if not hasattr(transformer_cosmos, "transforms"):
        monkeypatch.setattr(transformer_cosmos, "transforms", TRANSFORMS_STAND_IN, raising=False)


def _transformer(video2world: bool = False) -> "diffusers.CosmosTransformer3DModel":
    return _randomize(
        diffusers.CosmosTransformer3DModel(
            in_channels=5 if video2world else 4,
            out_channels=4,
            num_attention_heads=2,
            attention_head_dim=16,
            num_layers=2,
            mlp_ratio=2.0,
            text_embed_dim=24,
            adaln_lora_dim=8,
            max_size=(8, 16, 16),
            rope_scale=(2.0, 1.0, 1.0),
        )
    )


def _both_outputs(transformer, net: GeneralDIT, video2world: bool):
    torch.manual_seed(1)
    batch = 2
    x = torch.randn(batch, 4, 3, 8, 12)
    c_noise = torch.randn(batch)
    text = torch.randn(batch, 7, 24)
    pad = (torch.rand(1, 1, 64, 96) > 0.7).float()
    cond = (torch.rand(batch, 1, 3, 8, 12) > 0.5).float() if video2world else None
    with torch.no_grad():
        theirs = transformer(
            x, timestep=c_noise, encoder_hidden_states=text, fps=24, padding_mask=pad, condition_mask=cond
        ).sample
        ours = net(
            x,
            c_noise,
            text,
            fps=24,
            padding_mask=pad.expand(batch, -1, -1, -1),
            condition_video_input_mask=cond,
        )
    return ours, theirs


@pytest.mark.parametrize("video2world", [False, True])
def test_dit_from_diffusers_gives_diffusers_outputs(video2world):
    transformer = _transformer(video2world)
    net = dit_from_diffusers(transformer)
    assert net.config.video_extend == video2world
    ours, theirs = _both_outputs(transformer, net, video2world)
    _assert_close(ours, theirs, "GeneralDIT vs diffusers")


def test_dit_to_diffusers_round_trip():
    transformer = _transformer()
    back = dit_to_diffusers(dit_from_diffusers(transformer))
    for (name, a), (name_b, b) in zip(
        transformer.state_dict().items(), back.state_dict().items(), strict=True
    ):
        assert name == name_b
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_dit_from_diffusers_refuses_other_variants():
    predict2 = diffusers.CosmosTransformer3DModel(
        in_channels=4, out_channels=4, num_attention_heads=2, attention_head_dim=16, num_layers=1,
        text_embed_dim=24, adaln_lora_dim=8, max_size=(8, 16, 16), extra_pos_embed_type=None,
    )  # fmt: skip
    with pytest.raises(ValueError, match="extra_pos_embed_type"):
        dit_from_diffusers(predict2)
    with pytest.raises(TypeError, match="CosmosTransformer3DModel"):
        dit_from_diffusers(torch.nn.Linear(2, 2))


def _vae() -> "diffusers.AutoencoderKLCosmos":
    return _randomize(
        diffusers.AutoencoderKLCosmos(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            encoder_block_out_channels=(4, 8, 16, 16),
            decode_block_out_channels=(8, 16, 16, 16),
            attention_resolutions=(8,),
            resolution=32,
            num_layers=1,
            patch_size=4,
            latents_mean=None,
            latents_std=None,
        )
    )


def test_tokenizer_from_diffusers_gives_diffusers_outputs():
    vae = _vae()
    tokenizer = tokenizer_from_diffusers(vae)
    torch.manual_seed(2)
    video = torch.randn(1, 3, 9, 32, 32)
    with torch.no_grad():
        latents = vae.encode(video).latent_dist.mode()
        _assert_close(tokenizer.encode(video), latents, "encode")
        _assert_close(tokenizer.decode(latents), vae.decode(latents).sample, "decode")


def test_load_diffusers_dir(tmp_path):
    transformer, vae = _transformer(), _vae()
    transformer.save_pretrained(tmp_path / "transformer")
    vae.register_to_config(latents_mean=[0.1] * 4, latents_std=[2.0] * 4)
    vae.save_pretrained(tmp_path / "vae")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "CosmosTextToWorldPipeline"}))
    with pytest.raises(ValueError, match="no transformer/ component"):
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "model_index.json").write_text("{}")
        load_diffusers_dir(tmp_path / "other")
    (tmp_path / "model_index.json").write_text(
        json.dumps({"_class_name": "CosmosTextToWorldPipeline", "transformer": [], "vae": []})
    )
    world = load_diffusers_dir(tmp_path)
    assert world.pipeline_class == "CosmosTextToWorldPipeline"
    torch.testing.assert_close(world.latent_std, torch.full((4,), 2.0))
    ours, theirs = _both_outputs(transformer, world.net, False)
    _assert_close(ours, theirs, "loaded GeneralDIT vs diffusers")


def test_generate_runs_a_diffusers_dir(tmp_path, capsys):
    from cosmos_kernels.tools import cli

    _transformer().save_pretrained(tmp_path / "transformer")
    _vae().save_pretrained(tmp_path / "vae")
    index = {"_class_name": "CosmosTextToWorldPipeline", "transformer": [], "vae": []}
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    out = tmp_path / "t2w.npy"
    args = ["generate", "--diffusers-dir", str(tmp_path), "--prompt", "a ball", "--frames", "9"]
    assert cli.main([*args, "--height", "32", "--width", "32", "--steps", "2", "--out", str(out)]) == 0
    assert "CosmosTextToWorldPipeline from" in capsys.readouterr().out
    assert np.load(out).shape == (9, 32, 32, 3)
    assert cli.main([*args, "--checkpoint", "model.pt"]) == 2
    assert "holds the transformer and the VAE: drop --checkpoint" in capsys.readouterr().err
    assert cli.main(["generate", "--diffusers-dir", str(tmp_path / "none"), "--prompt", "x"]) == 2
    assert "no model_index.json" in capsys.readouterr().err
