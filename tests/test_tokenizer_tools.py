"""Tokenizer tools: video files, the tokenize / detokenize commands, PSNR / SSIM."""

import math

import pytest
import torch
from torch import nn

pytest.importorskip("av")
from safetensors import safe_open

from cosmos_kernels import cli
from cosmos_kernels.data import physics_clip
from cosmos_kernels.metrics import psnr, ssim
from cosmos_kernels.models import build_tokenizer
from cosmos_kernels.video_io import from_model, read_video, to_model, write_video


def _write_clip(path, frames=17, height=32, width=48, fps=24):
    clip = from_model(physics_clip(frames, height, width, seed=0)[0][None])
    write_video(path, clip, fps)
    return clip


def test_video_files_round_trip(tmp_path):
    clip = _write_clip(tmp_path / "in.mp4")
    frames, fps = read_video(tmp_path / "in.mp4")
    assert frames.shape == (17, 32, 48, 3) and frames.dtype == torch.uint8 and fps == 24
    # Measured 31.3 dB: H.264 at crf 18 with 4:2:0 chroma, on small balls in a tiny frame.
    assert psnr(to_model(frames), to_model(clip)) > 27
    assert torch.equal(from_model(to_model(clip)), clip)


def test_tokenize_detokenize_round_trip(tmp_path, capsys):
    _write_clip(tmp_path / "in.mp4")
    latents = tmp_path / "z.safetensors"
    assert cli.main(["tokenize", str(tmp_path / "in.mp4"), "--out", str(latents)]) == 0
    assert "random weights" in capsys.readouterr().out
    with safe_open(latents, framework="pt") as f:
        meta = f.metadata()
        assert f.get_tensor("latents").shape == (1, 16, 3, 4, 6)
    assert meta["model"] == "tiny-cv8x8x8" and meta["checkpoint"] == ""
    assert (meta["frames"], meta["height"], meta["width"], meta["fps"]) == ("17", "32", "48", "24")
    out = tmp_path / "out.mp4"
    args = ["detokenize", str(latents), "--out", str(out), "--reference", str(tmp_path / "in.mp4")]
    assert cli.main(args) == 0
    assert "PSNR" in capsys.readouterr().out
    frames, fps = read_video(out)
    assert frames.shape == (17, 32, 48, 3) and fps == 24


def test_tokenize_pads_and_detokenize_crops(tmp_path, capsys):
    _write_clip(tmp_path / "in.mp4", frames=10, height=20, width=30)
    latents, out = tmp_path / "z.safetensors", tmp_path / "out.mp4"
    assert cli.main(["tokenize", str(tmp_path / "in.mp4"), "--out", str(latents), "--chunk-frames", "9"]) == 0
    assert "Padding 10 x 20 x 30 to 17 x 24 x 32" in capsys.readouterr().out
    with safe_open(latents, framework="pt") as f:
        assert f.get_tensor("latents").shape == (1, 16, 3, 3, 4)
    assert cli.main(["detokenize", str(latents), "--out", str(out)]) == 0
    assert read_video(out)[0].shape == (10, 20, 30, 3)


def _torchscript(state_dict, path):
    """A TorchScript file whose state dict is ``state_dict``, as Cosmos's ``*.jit`` files hold."""
    root = nn.Module()
    for key, value in state_dict.items():
        *names, leaf = key.split(".")
        module = root
        for name in names:
            if not hasattr(module, name):
                module.add_module(name, nn.Module())
            module = getattr(module, name)
        module.register_parameter(leaf, nn.Parameter(value.clone()))
    torch.jit.script(root).save(str(path))


def test_checkpoint_directory_of_torchscript_files(tmp_path, capsys):
    torch.manual_seed(7)
    model = build_tokenizer("tiny-cv8x8x8").eval()
    state = model.state_dict()
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for half, prefixes in (
        ("encoder", ("encoder.", "quant_conv.")),
        ("decoder", ("decoder.", "post_quant_conv.")),
    ):
        _torchscript({k: v for k, v in state.items() if k.startswith(prefixes)}, ckpt / f"{half}.jit")
    clip = _write_clip(tmp_path / "in.mp4", frames=9, height=16, width=16)
    latents = tmp_path / "z.safetensors"
    assert (
        cli.main(["tokenize", str(tmp_path / "in.mp4"), "--out", str(latents), "--checkpoint", str(ckpt)])
        == 0
    )
    assert "random weights" not in capsys.readouterr().out
    with safe_open(latents, framework="pt") as f:
        got = f.get_tensor("latents")
    with torch.no_grad():
        expected = model.encode(to_model(read_video(tmp_path / "in.mp4")[0]))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # detokenize finds the decoder through the checkpoint recorded in the latents file.
    assert cli.main(["detokenize", str(latents), "--out", str(tmp_path / "out.mp4")]) == 0
    assert "decoder weights from" in capsys.readouterr().out
    assert read_video(tmp_path / "out.mp4")[0].shape == clip.shape


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["tokenize", "{tmp}/missing.mp4", "--out", "{tmp}/z.safetensors"], "no such file"),
        (
            ["tokenize", "{tmp}/in.mp4", "--out", "{tmp}/z.safetensors", "--model", "huge"],
            "unknown video tokenizer",
        ),
        (
            ["tokenize", "{tmp}/in.mp4", "--out", "{tmp}/z.safetensors", "--checkpoint", "{tmp}"],
            "neither encoder.jit",
        ),
        (["tokenize", "{tmp}/in.mp4", "--out", "{tmp}/z.safetensors", "--chunk-frames", "4"], "chunk_frames"),
        (
            ["tokenize", "{tmp}/not_a_video.mp4", "--out", "{tmp}/z.safetensors"],
            "not a readable video: {tmp}/not_a_video.mp4 (Invalid data",
        ),
        (["tokenize", "{tmp}/empty.mp4", "--out", "{tmp}/z.safetensors"], "not a readable video"),
        (["detokenize", "{tmp}/in.mp4", "--out", "{tmp}/out.mp4"], "error"),
        (["detokenize", "{tmp}/missing.safetensors", "--out", "{tmp}/out.mp4"], "no such file"),
    ],
)
def test_bad_inputs_exit_2_with_a_message(tmp_path, capsys, args, message):
    _write_clip(tmp_path / "in.mp4", frames=9, height=16, width=16)
    (tmp_path / "not_a_video.mp4").write_bytes(b"not a video")
    (tmp_path / "empty.mp4").write_bytes(b"")
    assert cli.main([a.format(tmp=tmp_path) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.format(tmp=tmp_path) in err
    assert "Traceback" not in err and "Errno" not in err


def test_psnr_and_ssim_known_values():
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 5, 64, 64, generator=gen) * 2 - 1
    assert psnr(a, a) == math.inf and ssim(a, a) == pytest.approx(1.0)
    sigma = 0.1  # Gaussian noise: MSE = sigma^2, PSNR = 10 log10(2^2 / sigma^2) = 26.02 dB on [-1, 1]
    noisy = a + sigma * torch.randn(a.shape, generator=gen)
    assert psnr(a, noisy) == pytest.approx(10 * math.log10(4 / sigma**2), abs=0.1)
    assert psnr((a + 1) / 2, (noisy + 1) / 2, data_range=1.0) == pytest.approx(psnr(a, noisy))
    assert 0 < ssim(a, a + 3 * sigma * torch.randn(a.shape, generator=gen)) < ssim(a, noisy) < 1
    # Constant planes: the variance terms are C2 / C2, leaving the luminance term.
    x, y, c1 = torch.full((16, 16), 0.2), torch.full((16, 16), -0.4), (0.01 * 2) ** 2
    assert ssim(x, y) == pytest.approx((2 * 0.2 * -0.4 + c1) / (0.2**2 + 0.4**2 + c1))
