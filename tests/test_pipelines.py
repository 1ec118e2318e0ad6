"""Text2World / Video2World pipelines on the tiny models, the text encoders and `cosmos-kernels generate`."""

import numpy as np
import pytest
import torch

from cosmos_kernels import cli
from cosmos_kernels.models import build_dit, build_tokenizer
from cosmos_kernels.pipelines import (
    HashTextEncoder,
    SamplingOptions,
    Text2WorldPipeline,
    Video2WorldPipeline,
)

FAST = SamplingOptions(num_steps=3)


@pytest.fixture(scope="module")
def tokenizer():
    torch.manual_seed(0)
    return build_tokenizer("tiny-cv8x8x8").eval()


def test_hash_text_encoder():
    encoder = HashTextEncoder()
    emb, mask = encoder(["Two red balls", "two RED balls bounce", ""])
    assert emb.shape == (3, 512, 1024) and mask.shape == (3, 512)
    assert mask.sum(dim=1).tolist() == [3, 4, 0]
    torch.testing.assert_close(emb[0, :3], emb[1, :3])  # same words, same embeddings
    assert not emb[1, 3].eq(emb[0, 2]).all()
    assert emb[:, 4:].abs().sum() == 0 and emb[2].abs().sum() == 0  # zero padding, as Cosmos's T5
    torch.testing.assert_close(encoder(["two red balls"])[0], emb[:1])
    with pytest.raises(TypeError, match="prompts must be a non-empty list"):
        encoder("a bare string")


def test_text2world_shapes_and_seed(tokenizer):
    torch.manual_seed(1)
    pipe = Text2WorldPipeline(build_dit("tiny"), HashTextEncoder(), tokenizer)
    out = pipe(["a red ball", "a blue ball"], num_frames=9, height=32, width=48, options=FAST, seed=3)
    assert out.latents.shape == (2, 16, 2, 4, 6) and out.video.shape == (2, 3, 9, 32, 48)
    assert out.video.abs().max() <= 1
    again = pipe(["a red ball", "a blue ball"], num_frames=9, height=32, width=48, options=FAST, seed=3)
    assert torch.equal(again.latents, out.latents)
    other = pipe(["a red ball", "a blue ball"], num_frames=9, height=32, width=48, options=FAST, seed=4)
    assert not torch.equal(other.latents, out.latents)
    negative = pipe(
        ["a red ball", "a blue ball"],
        negative_prompt="blurry",
        num_frames=9,
        height=32,
        width=48,
        options=FAST,
        seed=3,
    )
    assert not torch.equal(negative.latents, out.latents)


def test_text2world_without_tokenizer_returns_latents():
    torch.manual_seed(1)
    pipe = Text2WorldPipeline(build_dit("tiny"), HashTextEncoder(), prompt_upsampler=str.upper)
    out = pipe("a red ball", num_frames=17, height=32, width=32, options=FAST)
    assert out.video is None and out.latents.shape == (1, 16, 3, 4, 4)
    assert out.prompts == ["A RED BALL"]


def test_video2world_keeps_the_condition_frames(tokenizer):
    torch.manual_seed(2)
    pipe = Video2WorldPipeline(build_dit("tiny-video2world"), HashTextEncoder(), tokenizer)
    given = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    out = pipe("a ball falls", given, num_frames=25, options=FAST)
    assert out.latents.shape == (1, 16, 4, 4, 4) and out.video.shape == (1, 3, 25, 32, 32)
    condition = tokenizer.encode(given)  # 9 frames -> 2 latent frames, kept up to the 0.001 augmentation
    err = (out.latents[:, :, :2] - condition).norm() / condition.norm()
    assert err < 1e-2, err


def test_pipeline_bad_input(tokenizer):
    t2w = Text2WorldPipeline(build_dit("tiny"), HashTextEncoder(), tokenizer)
    v2w = Video2WorldPipeline(build_dit("tiny-video2world"), HashTextEncoder(), tokenizer)
    with pytest.raises(ValueError, match=r"num_frames must be 1 \+ 8 k"):
        t2w("x", num_frames=16, height=32, width=32, options=FAST)
    with pytest.raises(ValueError, match="multiples of 16"):
        t2w("x", num_frames=9, height=24, width=32, options=FAST)
    with pytest.raises(ValueError, match="width 512 must equal"):
        Text2WorldPipeline(build_dit("tiny"), HashTextEncoder(width=512))
    with pytest.raises(ValueError, match="Video2World network"):
        Text2WorldPipeline(build_dit("tiny-video2world"), HashTextEncoder(), tokenizer)(
            "x", num_frames=9, height=32, width=32
        )
    with pytest.raises(ValueError, match="must be fewer than"):
        v2w("x", torch.zeros(1, 3, 9, 32, 32), num_frames=9, options=FAST)
    with pytest.raises(ValueError, match=r"video must be \(B, 3, n, H, W\)"):
        v2w("x", torch.zeros(1, 9, 32, 32), num_frames=17, options=FAST)


def test_cli_generate(tmp_path, capsys):
    from PIL import Image

    from cosmos_kernels.video_io import read_video

    # Without --checkpoint the tiny models are the shipped ones, at their 32x32 training size.
    out = tmp_path / "t2w.mp4"
    assert (
        cli.main(["generate", "--prompt", "a red ball", "--steps", "2", "--frames", "9", "--out", str(out)])
        == 0
    )
    frames, _ = read_video(out)
    assert frames.shape == (9, 32, 32, 3)
    assert "shipped" in capsys.readouterr().out
    # The contact sheet: 9 frames enlarged 3x, 1-pixel gaps.
    assert Image.open(tmp_path / "t2w.png").size == (1 + 9 * 97, 1 + 97)
    v2w = tmp_path / "v2w.mp4"
    args = ["generate", "--model", "tiny-video2world", "--prompt", "x", "--input-video", str(out)]
    sheet = tmp_path / "sheet.png"
    more = ["--frames", "17", "--steps", "2", "--out", str(v2w), "--contact-sheet", str(sheet)]
    assert cli.main([*args, "--input-frames", "9", *more]) == 0
    assert read_video(v2w)[0].shape == (17, 32, 32, 3)
    assert sheet.exists()
    capsys.readouterr()
    assert cli.main(["generate", "--prompt", "x", "--model", "tiny-video2world", "--out", str(v2w)]) == 2
    assert "take --input-video" in capsys.readouterr().err
    assert cli.main(["generate", "--prompt", "x", "--model", "cosmos-3b"]) == 2
    assert "unknown world model" in capsys.readouterr().err


def test_generate_video2world_continues_from_the_last_frames(tmp_path, monkeypatch):
    """As Cosmos's get_condition_latent: the last --input-frames frames of the video condition it."""
    import types

    from cosmos_kernels import pipelines
    from cosmos_kernels.video_io import write_video

    levels = torch.arange(12, dtype=torch.uint8) * 20  # frame i is uniformly 20 * i
    write_video(tmp_path / "in.mp4", levels[:, None, None, None].expand(12, 32, 32, 3).contiguous(), 24)
    given = []

    def record(self, prompt, frames, *, num_frames, **kwargs):
        given.append(frames)
        return types.SimpleNamespace(video=torch.zeros(1, 3, num_frames, 32, 32))

    monkeypatch.setattr(pipelines.Video2WorldPipeline, "__call__", record)
    args = [
        "generate",
        "--model",
        "tiny-video2world",
        "--prompt",
        "x",
        "--input-video",
        str(tmp_path / "in.mp4"),
    ]
    assert cli.main([*args, "--input-frames", "9", "--frames", "17", "--out", str(tmp_path / "out.npy")]) == 0
    pixels = (given[0][0] + 1) * 127.5  # (C, T, H, W) in [-1, 1] -> [0, 255]
    assert pixels.mean(dim=(0, 2, 3)).round(decimals=-1).tolist() == [float(20 * i) for i in range(3, 12)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/nodir/sub/x.mp4"], "--out {tmp}/nodir/sub/x.mp4: the folder"),
        (["--contact-sheet", "{tmp}/nodir/x.png"], "--contact-sheet {tmp}/nodir/x.png: the folder"),
        (["--height", "64", "--width", "64"], "trained on 32x32 frames only; at 64x64"),
        (["--model", "tiny-video2world", "--input-video", "{tmp}/text.mp4"], "not a readable video"),
    ],
)
def test_cli_generate_refuses_before_sampling(tmp_path, capsys, monkeypatch, args, message):
    (tmp_path / "text.mp4").write_text("not a video")

    def no_sampling(*_args, **_kwargs):
        raise AssertionError("sampled before checking its arguments")

    monkeypatch.setattr("cosmos_kernels.pipelines.Text2WorldPipeline.__call__", no_sampling)
    monkeypatch.setattr("cosmos_kernels.pipelines.Video2WorldPipeline.__call__", no_sampling)
    argv = ["generate", "--prompt", "x", "--out", str(tmp_path / "x.mp4")]
    assert cli.main(argv + [a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err


def test_cli_generate_any_size_warns(tmp_path, capsys):
    out = tmp_path / "x.npy"
    argv = ["generate", "--prompt", "x", "--steps", "1", "--frames", "9", "--height", "64", "--width", "64"]
    assert cli.main([*argv, "--any-size", "--out", str(out)]) == 0
    assert "trained on 32x32 frames only" in capsys.readouterr().out
    assert np.load(out).shape == (9, 64, 64, 3)
