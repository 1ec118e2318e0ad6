"""The Cosmos-1.0 diffusion decoder: the network's token path and the window split / blend against
transcriptions of Cosmos's code, its 7B parameter count, and the pipeline end to end on tiny models."""

import re
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from cosmos_kernels.models import HashTextEncoder, build_dit, build_tokenizer
from cosmos_kernels.models.dit import GeneralDIT
from cosmos_kernels.models.dit_checkpoint import load_cosmos_state_dict
from cosmos_kernels.models.dit_decoder import DECODER_DIT_CONFIGS, DiffusionDecoderGeneralDIT
from cosmos_kernels.pipelines import (
    DecoderSamplingOptions,
    DiffusionDecoderPipeline,
    linear_blend_video_list,
    split_with_overlap,
)

# --- transcriptions of cosmos_predict1/autoregressive/diffusion_decoder/{network,utils}.py ---


def cosmos_token_channels(token_embedder, latent_condition, x_shape):
    """DiffusionDecoderGeneralDIT.prepare_embedded_sequence's token path; torchvision's tensor
    ``resize(BILINEAR)`` is ``F.interpolate(bilinear, align_corners=False, antialias=...)``."""
    latent_condition = token_embedder(latent_condition)
    B, _, T = latent_condition.shape[:3]
    latent_condition = rearrange(latent_condition, "B 1 T H W D -> (B T) (1 D) H W")
    latent_condition = F.interpolate(
        latent_condition, size=list(x_shape[-2:]), mode="bilinear", align_corners=False
    )
    return rearrange(latent_condition, "(B T) D H W -> B D T H W ", B=B, T=T)


def cosmos_split_with_overlap(video_BCTHW, num_video_frames, overlap=2):
    T = video_BCTHW.shape[2]
    chunks = []
    step = num_video_frames - overlap
    for start in range(0, T - overlap, step):
        end = start + num_video_frames
        if end > T:
            num_padding_frames = end - T
            chunk = F.pad(
                video_BCTHW[:, :, start:T, :, :], (0, 0, 0, 0, 0, num_padding_frames), mode="reflect"
            )
        else:
            chunk = video_BCTHW[:, :, start:end, :, :]
        chunks.append(chunk)
    return chunks


def cosmos_linear_blend_video_list(videos, D):
    b, c, t, h, w = videos[0].shape
    N = len(videos)
    L = N * t - D * (N - 1)
    output_video = torch.zeros((b, c, L, h, w), device=videos[0].device)
    output_index = 0
    for i in range(N):
        if i == 0:
            output_video[:, :, output_index : output_index + t - D, :, :] = videos[i][:, :, : t - D, :, :]
            output_index += t - D
        else:
            blend_weights = torch.linspace(0, 1, steps=D, device=videos[0].device)
            for j in range(D):
                w1 = 1 - blend_weights[j]
                w2 = blend_weights[j]
                frame_from_prev = videos[i - 1][:, :, t - D + j, :, :]
                frame_from_curr = videos[i][:, :, j, :, :]
                output_video[:, :, output_index, :, :] = w1 * frame_from_prev + w2 * frame_from_curr
                output_index += 1
            if i < N - 1:
                frames_to_copy = t - 2 * D
                if frames_to_copy > 0:
                    output_video[:, :, output_index : output_index + frames_to_copy, :, :] = videos[i][
                        :, :, D : t - D, :, :
                    ]
                    output_index += frames_to_copy
            else:
                frames_to_copy = t - D
                output_video[:, :, output_index : output_index + frames_to_copy, :, :] = videos[i][
                    :, :, D:, :, :
                ]
                output_index += frames_to_copy
    return output_video


# --- the network ---


def _decoder(**overrides):
    torch.manual_seed(0)
    net = build_dit("tiny-decoder", **overrides).eval()
    torch.nn.init.normal_(net.token_embedder.weight)  # zero at init: give the token path something
    for block in net.blocks.values():  # and the blocks, so that the output depends on the input
        for sub in block.blocks:
            torch.nn.init.normal_(sub.adaLN_modulation[-1].weight, std=0.02)
    return net


def test_decoder_config_is_cosmos():
    c = DECODER_DIT_CONFIGS["cosmos-7b-decoder"]
    assert (c.model_channels, c.num_blocks, c.num_heads, c.in_channels, c.out_channels) == (
        4096,
        28,
        32,
        16,
        16,
    )
    assert (c.max_img_h, c.max_img_w, c.max_frames) == (240, 240, 128)
    assert (c.rope_h_extrapolation_ratio, c.rope_w_extrapolation_ratio, c.rope_t_extrapolation_ratio) == (
        1.5,
        1.5,
        1,
    )
    assert not c.extra_per_block_abs_pos_emb and c.concat_padding_mask and c.use_adaln_lora
    assert (c.token_vocab_size, c.token_dim, c.embed_channels) == (64000, 32, 49)


def test_7b_decoder_builds_on_meta_with_the_parameter_count_of_its_config():
    with torch.device("meta"):
        net = build_dit("cosmos-7b-decoder")
        base = build_dit("cosmos-7b", extra_per_block_abs_pos_emb=False)
    assert isinstance(net, DiffusionDecoderGeneralDIT)
    c = net.config
    patch = c.patch_spatial**2 * c.patch_temporal
    extra = c.token_vocab_size * c.token_dim + c.token_dim * patch * c.model_channels
    count = sum(p.numel() for p in net.parameters())
    assert count == sum(p.numel() for p in base.parameters()) + extra
    assert abs(count - 7.237e9) / 7.237e9 < 1e-3
    assert net.x_embedder.proj[1].weight.shape == (4096, 196)
    assert net.token_embedder.weight.shape == (64000, 32)


def test_token_embedding_starts_at_zero():
    net = build_dit("tiny-decoder")
    assert not net.token_embedder.weight.any()
    x, t, text = torch.randn(1, 16, 2, 8, 8), torch.zeros(1), torch.randn(1, 3, 1024)
    a = net(x, t, text, token_indices=torch.zeros(1, 2, 4, 4, dtype=torch.int32))
    b = net(x, t, text, token_indices=torch.randint(0, 64000, (1, 2, 4, 4)))
    torch.testing.assert_close(a, b)


def test_token_path_matches_cosmos():
    """Our forward equals GeneralDIT on [x, Cosmos's resized token embedding] with the same weights."""
    net = _decoder()
    plain = GeneralDIT(replace(build_dit("tiny").config, **{
        k: getattr(net.config, k) for k in (
            "max_img_h", "max_img_w", "rope_h_extrapolation_ratio", "rope_w_extrapolation_ratio",
            "rope_t_extrapolation_ratio", "extra_per_block_abs_pos_emb")
    }, in_channels=16 + 32)).eval()  # fmt: skip
    state = net.state_dict()
    embedder = state.pop("token_embedder.weight")
    plain.load_state_dict(state)
    x, t, text = torch.randn(2, 16, 3, 8, 12), torch.rand(2), torch.randn(2, 5, 1024)
    tokens = torch.randint(0, 64000, (2, 3, 4, 6), dtype=torch.int32)
    padding = (torch.rand(2, 1, 64, 96) > 0.5).float()
    ours = net(x, t, text, token_indices=tokens, fps=24, padding_mask=padding)
    cond = cosmos_token_channels(
        torch.nn.Embedding.from_pretrained(embedder), tokens.long().unsqueeze(1), x.shape
    )
    theirs = plain(torch.cat([x, cond], 1), t, text, fps=24, padding_mask=padding)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_bilinear_2x_enlargement_is_the_same_with_and_without_antialias():
    # torchvision's resize defaults to antialias=True since 0.17 and to False before; for the decoder's
    # 2x enlargement both give the same result.
    emb = torch.randn(3, 32, 40, 64, dtype=torch.float64)
    a = F.interpolate(emb, size=(80, 128), mode="bilinear", align_corners=False, antialias=True)
    b = F.interpolate(emb, size=(80, 128), mode="bilinear", align_corners=False, antialias=False)
    torch.testing.assert_close(a, b)


def test_decoder_checkpoint_loads_with_cosmos_keys():
    net = _decoder()
    sd = {f"net.{k}": v.clone() for k, v in net.state_dict().items()}
    sd["net.pos_embedder.seq"] = torch.arange(10)
    fresh = build_dit("tiny-decoder")
    load_cosmos_state_dict(fresh, sd)
    torch.testing.assert_close(fresh.token_embedder.weight, net.token_embedder.weight)
    del sd["net.token_embedder.weight"]
    with pytest.raises(ValueError, match=r"token_embedder\.weight"):
        load_cosmos_state_dict(build_dit("tiny-decoder"), sd)


@pytest.mark.parametrize(
    ("tokens", "error", "match"),
    [
        (torch.full((1, 2, 4, 4), 64000), ValueError, "0..63999"),
        (torch.full((1, 2, 4, 4), -1), ValueError, "0..63999"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.long), ValueError, "T' = 2"),
        (torch.zeros(1, 2, 4, dtype=torch.long), ValueError, r"\(B, T', H', W'\)"),
        (torch.zeros(1, 2, 4, 4), TypeError, "integers"),
        ([[0]], TypeError, "integer tensor"),
    ],
)
def test_network_rejects_bad_tokens(tokens, error, match):
    net = build_dit("tiny-decoder")
    with pytest.raises(error, match=match):
        net(torch.randn(1, 16, 2, 8, 8), torch.zeros(1), torch.randn(1, 3, 1024), token_indices=tokens)


def test_build_dit_names_the_decoders_among_known_configs():
    with pytest.raises(ValueError, match="tiny-decoder"):
        build_dit("no-such-model")
    with pytest.raises(TypeError, match="token_dim"):
        build_dit("tiny", token_dim=8)


# --- windows ---


@pytest.mark.parametrize(
    ("frames", "window", "overlap"), [(5, 8, 2), (8, 8, 2), (14, 8, 2), (17, 8, 2), (9, 4, 1), (8, 3, 0)]
)
def test_split_with_overlap_matches_cosmos(frames, window, overlap):
    video = torch.randn(2, 3, frames, 2, 3)
    ours = split_with_overlap(video, window, overlap)
    theirs = cosmos_split_with_overlap(video, window, overlap)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Integer tokens split the same way (torch's reflect padding takes floating tensors only).
    indices = torch.randint(0, 64000, (2, 1, frames, 2, 3), dtype=torch.int32)
    for a, b in zip(
        split_with_overlap(indices, window, overlap),
        cosmos_split_with_overlap(indices.double(), window, overlap),
        strict=True,
    ):
        assert a.dtype == torch.int32 and torch.equal(a.double(), b)


def test_split_with_overlap_extends_cosmos_to_short_videos():
    # Cosmos gives no window for T <= overlap and fails to reflect-pad more than T - 1 frames.
    one = split_with_overlap(torch.arange(1.0).view(1, 1, 1, 1, 1), 8, 2)
    assert len(one) == 1 and one[0].flatten().tolist() == [0.0] * 8
    two = split_with_overlap(torch.arange(3.0).view(1, 1, 3, 1, 1), 8, 2)
    assert two[0].flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1]


@pytest.mark.parametrize(("n", "t", "overlap"), [(2, 57, 2), (3, 9, 2), (4, 5, 1), (3, 6, 3), (2, 4, 0)])
def test_linear_blend_matches_cosmos(n, t, overlap):
    videos = [torch.randn(1, 3, t, 4, 5) for _ in range(n)]
    torch.testing.assert_close(
        linear_blend_video_list(videos, overlap), cosmos_linear_blend_video_list(videos, overlap)
    )


def test_window_functions_reject_bad_input():
    with pytest.raises(ValueError, match="overlap"):
        split_with_overlap(torch.zeros(1, 1, 9, 1, 1), 4, 4)
    with pytest.raises(ValueError, match="one shape"):
        linear_blend_video_list([torch.zeros(1, 3, 9, 2, 2), torch.zeros(1, 3, 8, 2, 2)], 2)
    with pytest.raises(ValueError, match="overlap"):
        DecoderSamplingOptions(window=2, overlap=2)


# --- the pipeline ---


class _RecordingDecoder(DiffusionDecoderGeneralDIT):
    def forward(self, x, timesteps, crossattn_emb, **kwargs):
        self.calls.append((kwargs["token_indices"].clone(), crossattn_emb.clone()))
        return super().forward(x, timesteps, crossattn_emb, **kwargs)


def _pipeline(net=None):
    torch.manual_seed(0)
    net = net if net is not None else _decoder()
    cv = build_tokenizer("tiny-cv8x8x8").eval()
    dv = SimpleNamespace(config=SimpleNamespace(temporal_compression=8, spatial_compression=16))
    return DiffusionDecoderPipeline(net, dv, cv, HashTextEncoder(max_length=4))


FAST = DecoderSamplingOptions(num_steps=2, window=2, overlap=1)


def test_pipeline_decodes_windows_and_crops_to_the_token_frames():
    net = _RecordingDecoder(build_dit("tiny-decoder").config).eval()
    net.load_state_dict(_decoder().state_dict())
    net.calls = []
    pipe = _pipeline(net)
    tokens = torch.randint(1, 64000, (2, 3, 2, 2), dtype=torch.int32)
    video = pipe(tokens, options=FAST, seed=3)
    assert video.shape == (2, 3, 17, 32, 32)
    assert video.abs().max() <= 1
    # T' = 3, window 2, overlap 1: windows [0, 1] and [1, 2]; each step runs both branches as one batch:
    # the conditional one with the window's tokens and the prompt, the unconditional one with index 0
    # and zero text.
    assert len(net.calls) == 2 * FAST.num_steps
    for call, window in zip(net.calls[:: FAST.num_steps], (tokens[:, 0:2], tokens[:, 1:3]), strict=True):
        indices, text = call
        assert torch.equal(indices[:2], window) and not indices[2:].any()
        assert text[:2].any() and not text[2:].any()
    torch.testing.assert_close(pipe(tokens, options=FAST, seed=3), video)


def test_pipeline_equals_one_window_sampled_and_decoded_by_hand():
    from cosmos_kernels.diffusion import EDMDenoiser, guided_denoiser, sample

    pipe = _pipeline()
    tokens = torch.randint(0, 64000, (1, 2, 2, 2))
    options = DecoderSamplingOptions(num_steps=3, window=2, overlap=1)
    video = pipe(tokens, "a prompt", options=options, seed=5)
    emb, _ = pipe.text_encoder(["a prompt"])
    denoise = guided_denoiser(
        EDMDenoiser(pipe.net), emb, guidance=1.8, token_indices=tokens,
        uncond_conditions={"token_indices": torch.zeros_like(tokens)}, fps=24.0,
        padding_mask=torch.zeros(1, 1, 32, 32),
    )  # fmt: skip
    z = sample(denoise, (1, 16, 2, 4, 4), num_steps=3, sigma_min=0.02, sigma_max=80, generator=5)
    expected = pipe.cv_tokenizer.decode(z / 0.5).clamp(-1, 1)[:, :, :9]
    torch.testing.assert_close(video, expected)


@pytest.mark.parametrize(
    ("tokens", "error", "match"),
    [
        (torch.full((1, 2, 2, 2), 64000), ValueError, "0..63999"),
        (torch.zeros(1, 2, 2, dtype=torch.long), ValueError, r"\(B, T', H', W'\)"),
        (torch.zeros(1, 2, 2, 2), TypeError, "integer"),
        (torch.zeros(1, 2, 40, 40, dtype=torch.long), ValueError, "32x32"),
    ],
)
def test_pipeline_rejects_bad_tokens(tokens, error, match):
    with pytest.raises(error, match=match):
        _pipeline()(tokens, options=FAST)


def test_pipeline_rejects_mismatched_parts():
    cv = build_tokenizer("tiny-cv8x8x8")
    text = HashTextEncoder(max_length=4)
    dv = SimpleNamespace(config=SimpleNamespace(temporal_compression=4, spatial_compression=16))
    with pytest.raises(ValueError, match="compression"):
        DiffusionDecoderPipeline(build_dit("tiny-decoder"), dv, cv, text)
    with pytest.raises(TypeError, match="DiffusionDecoderGeneralDIT"):
        DiffusionDecoderPipeline(build_dit("tiny"), dv, cv, text)


# --- training ---


class _TokenClips(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def bucket_key(self, index):
        return "1,1", 17

    def __getitem__(self, index):
        return {
            "latent": torch.randn(16, 3, 4, 4, generator=torch.Generator().manual_seed(index)),
            "token_indices": torch.full((3, 2, 2), 7 + index),
            "caption": "a clip",
            "fps": 24.0,
        }


def test_trainer_trains_the_decoder_on_tokens_with_token_dropout(monkeypatch):
    from cosmos_kernels.training import DataConfig, Stage, TrainConfig, train

    seen = []
    forward = DiffusionDecoderGeneralDIT.forward

    def recording(self, x, timesteps, crossattn_emb, **kwargs):
        seen.append(kwargs["token_indices"].clone())
        return forward(self, x, timesteps, crossattn_emb, **kwargs)

    monkeypatch.setattr(DiffusionDecoderGeneralDIT, "forward", recording)
    config = TrainConfig(
        stages=(Stage(resolution=32, frames=17, steps=3, lr=1e-3, batch_size=4, warmup_steps=1),),
        model="tiny-decoder",
        model_overrides={"num_blocks": 1, "max_img_h": 8, "max_img_w": 8},
        tokenizer=None,
        data=DataConfig(source="physics", length=1),
        precision="fp32",
        token_dropout=0.5,
    )
    result = train(config, HashTextEncoder(max_length=4), datasets=lambda s, d: _TokenClips(), progress=False)
    assert result.step == 3
    tokens = torch.cat(seen)
    kept = tokens.flatten(1).amax(1) > 0
    assert 0 < kept.sum() < len(kept)  # some samples keep their tokens, some are dropped to index 0
    assert set(tokens[kept].unique().tolist()) <= {7, 8, 9, 10}
    # The token embedding learns: the rows of the tokens seen move away from their zero init.
    net = build_dit("tiny-decoder", num_blocks=1, max_img_h=8, max_img_w=8)
    result.ema.copy_to(net)
    assert net.token_embedder.weight[7:11].abs().sum() > 0 and not net.token_embedder.weight[11:].any()


# --- the shipped-model loader and the CLI ---


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny decoder directory as scripts/train_tiny_diffusion_decoder.py writes it (random weights)."""
    import json

    import safetensors.torch

    from cosmos_kernels.models.tiny_decoder import (
        DECODER_FILE,
        DV_TOKENIZER_FILE,
        MANIFEST_FILE,
        build_tiny_decoder_parts,
    )

    manifest = {
        "decoder_overrides": {"num_blocks": 1, "max_img_h": 8, "max_img_w": 8},
        "dv_tokenizer": "tiny-dv8x16x16",
        "dv_tokenizer_overrides": {},
        "text_tokens": 4,
        "prompt": "a prompt",
        "sampling": {"num_steps": 15, "guidance": 1.8, "window": 3, "overlap": 1},
    }
    tmp_path = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    net, dv = build_tiny_decoder_parts(manifest)
    safetensors.torch.save_file(
        {k: v.half().contiguous() for k, v in net.state_dict().items()}, tmp_path / DECODER_FILE
    )
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in dv.state_dict().items()}, tmp_path / DV_TOKENIZER_FILE
    )
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    return tmp_path


def test_decode_tokens_cli_writes_the_video(tmp_path, capsys, model_dir):
    import numpy as np

    from cosmos_kernels import cli
    from cosmos_kernels.video_io import read_video

    tokens = tmp_path / "tokens.npy"
    np.save(tokens, np.random.default_rng(0).integers(0, 64000, (3, 2, 2), dtype=np.int32))
    out = tmp_path / "video.mp4"
    args = ["decode-tokens", str(tokens), "--out", str(out), "--model-dir", str(model_dir), "--steps", "2"]
    assert cli.main(args) == 0
    frames, _ = read_video(out)
    assert frames.shape == (17, 32, 32, 3)
    assert "17 frames of 32 x 32" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (None, "no such file"),
        ("out-of-range", "0..63999"),
        ("float", "integer token indices"),
        ("2d", r"\(T', H', W'\)"),
    ],
)
def test_decode_tokens_cli_reports_bad_tokens(tmp_path, capsys, model_dir, array, match):
    import numpy as np

    from cosmos_kernels import cli

    tokens = tmp_path / "tokens.npy"
    if array == "out-of-range":
        np.save(tokens, np.full((3, 2, 2), 64000, dtype=np.int32))
    elif array == "float":
        np.save(tokens, np.zeros((3, 2, 2), dtype=np.float32))
    elif array == "2d":
        np.save(tokens, np.zeros((2, 2), dtype=np.int32))
    args = ["decode-tokens", str(tokens), "--out", str(tmp_path / "v.mp4"), "--model-dir", str(model_dir)]
    assert cli.main([*args, "--steps", "1"]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_shipped_tiny_decoder_decodes_a_held_out_clip():
    from cosmos_kernels.data import physics_clip
    from cosmos_kernels.models.tiny_decoder import load_tiny_decoder, tiny_decoder_manifest

    figures = tiny_decoder_manifest()["figures"]
    for name in (
        "dv_decode",
        "diffusion_decoder",
        "diffusion_decoder_guidance_0",
        "cv_tokenizer_reconstruction",
    ):
        assert set(figures[name]) == {"psnr", "ssim", "balls_found", "position_error_found"}
    model = load_tiny_decoder()
    pipe = DiffusionDecoderPipeline(
        model.net, model.dv_tokenizer, model.cv_tokenizer, model.text_encoder,
        latent_mean=model.latent_mean, latent_std=model.latent_std,
    )  # fmt: skip
    video = physics_clip(17, 32, 32, [10_000, 1])[0][None]
    with torch.no_grad():
        tokens = model.dv_tokenizer.encode(video)
        assert tokens.shape == (1, 3, 2, 2) and tokens.dtype == torch.int32
        out = pipe(
            tokens, model.manifest["prompt"], options=DecoderSamplingOptions(num_steps=4, window=3, overlap=1)
        )
    assert out.shape == video.shape and out.abs().max() <= 1
