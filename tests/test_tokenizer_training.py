"""The tokenizer trainer (training.tokenizer): physics batches, the pooled latent target, the loss
options the tiny world model's script uses, and a short run that raises the reconstruction PSNR."""

import pytest
import torch

from cosmos_kernels.metrics import psnr
from cosmos_kernels.models import build_tokenizer
from cosmos_kernels.training import (
    TokenizerPhase,
    physics_tokenizer_batch,
    pooled_video_target,
    train_tokenizer,
)


def test_physics_batches_are_deterministic_and_mask_the_balls():
    video, mask = physics_tokenizer_batch(3, 2, 9, size=(24, 32))
    again, _ = physics_tokenizer_batch(3, 2, 9, size=(24, 32))
    assert video.shape == (2, 3, 9, 24, 32) and mask.shape == (2, 1, 9, 24, 32)
    assert torch.equal(video, again) and not torch.equal(video, physics_tokenizer_batch(4, 2, 9, (24, 32))[0])
    assert set(mask.unique().tolist()) == {0.0, 1.0} and 0 < mask.mean() < 0.5  # a few balls on a background
    assert not torch.equal(video[:, :, 0], video[:, :, -1])  # the balls move


def test_pooled_video_target_takes_every_other_frame_of_each_latent_frame():
    video = torch.arange(17, dtype=torch.float32).view(1, 1, 17, 1, 1).expand(2, 3, 17, 16, 24)
    target = pooled_video_target(video)
    assert target.shape == (2, 12, 3, 2, 3)
    assert target[0, :, 0, 0, 0].tolist() == [0.0] * 12
    assert target[0, ::3, 1, 0, 0].tolist() == [2.0, 4.0, 6.0, 8.0]
    assert target[0, ::3, 2, 0, 0].tolist() == [10.0, 12.0, 14.0, 16.0]
    with pytest.raises(ValueError, match=r"1 \+ 8k"):
        pooled_video_target(video[:, :, :12])


@pytest.mark.usefixtures("one_thread")
def test_loss_options_and_phases_run_as_the_script_uses_them():
    def first_loss(**options):
        torch.manual_seed(0)
        model = build_tokenizer("tiny-cv8x8x8")
        phases = options.pop("phases", [TokenizerPhase(1, 1e-3, options.pop("weight", 0.0), 9, 1)])
        seen = []
        losses = train_tokenizer(model, phases, on_step=lambda k, loss: seen.append(k), **options)
        assert seen == list(range(len(losses))) and all(torch.isfinite(torch.tensor(losses)))
        assert not model.training
        return losses[0]

    plain = first_loss()
    assert first_loss(weight=8.0) > plain  # the ball pixels count 9 times
    assert first_loss(latent_tie=1.0) > plain
    # The script's shape: a 9-frame phase, then a 17-frame one, weighted and tied.
    phases = [TokenizerPhase(2, 1e-3, 8.0, 9, 1), TokenizerPhase(1, 3e-4, 16.0, 17, 1)]
    first_loss(phases=phases, latent_tie=1.0)
    with pytest.raises(ValueError, match="TokenizerPhase: frames must be an int >= 1"):
        TokenizerPhase(10, 1e-3, frames=0)
    with pytest.raises(TypeError, match="phases"):
        train_tokenizer(build_tokenizer("tiny-cv8x8x8"), [])


# Measured on 2 shared CPU cores (torch 2.13): the untrained tiny tokenizer reconstructs the 4 training
# clips at 5.2 dB, after 100 steps (~15 s) at 18.1 dB.
TRAINED_PSNR_DB = 15.0


@pytest.mark.usefixtures("one_thread")  # 100 small steps
def test_training_the_tiny_tokenizer_raises_its_psnr():
    torch.manual_seed(0)
    model = build_tokenizer("tiny-cv8x8x8")
    clips, masks = physics_tokenizer_batch(0, 4, 9)

    def reconstruction_psnr():
        with torch.no_grad():
            return psnr(model.decode(model.encode(clips)).clamp(-1, 1), clips)

    before = reconstruction_psnr()
    phase = TokenizerPhase(100, 2e-3, frames=9, clips=4)
    losses = train_tokenizer(model, [phase], batches=lambda step, n, frames: (clips, masks), warmup_steps=10)
    after = reconstruction_psnr()
    assert len(losses) == 100 and losses[-1] < losses[0] / 4
    assert after > TRAINED_PSNR_DB and after > before + 8, (before, after)
