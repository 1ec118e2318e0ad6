"""The DiT trainer: overfitting one batch, exact resume, stage handoff, joint image/video batches, EMA,
the LR schedule, bad inputs, the log and its plot, the CLI, and FSDP2 / context parallelism on gloo.

Most runs train on random latents (a dataset factory with precomputed "latent"s) so that a step costs
milliseconds; the resume and CLI tests go through the synthetic physics clips and the tiny tokenizer.
"""

import argparse
import dataclasses
import importlib.util
import json
import math
import shutil

import pytest
import torch
from _dist_utils import run_distributed

from cosmos_kernels.pipelines import HashTextEncoder
from cosmos_kernels.tools.train import add_train_arguments, run_train
from cosmos_kernels.training import (
    EMA,
    DataConfig,
    LRSchedule,
    Stage,
    TrainConfig,
    domain_cursor,
    latest_checkpoint,
    load_trainer_state,
    plot_losses,
    read_jsonl,
    step_domain,
    train,
)

TEXT = HashTextEncoder(max_length=8)
COLORS = ("red", "green", "blue", "yellow")


pytestmark = pytest.mark.usefixtures("one_thread")  # the steps are tiny (conftest.one_thread)


class LatentSamples:
    """``n`` samples of random tokenizer latents for one domain of a stage: (16, T, s, s) with
    T = 1 + (frames - 1) / 8 (1 for images) and s = resolution / 8, and distinct captions."""

    def __init__(self, stage, domain, n=4, seed=0):
        self.frames = 1 if domain == "image" else stage.frames
        t, s = 1 + (self.frames - 1) // 8, stage.resolution // 8
        gen = torch.Generator().manual_seed(seed * 10 + (domain == "image"))
        self.latents = torch.randn(n, 16, t, s, s, generator=gen)
        self.captions = [f"a {COLORS[i % 4]} ball falls {i // 4}" for i in range(n)]

    def __len__(self):
        return len(self.latents)

    def bucket_key(self, index):
        return "1,1", self.frames

    def __getitem__(self, index):
        return {"latent": self.latents[index], "caption": self.captions[index], "fps": 24.0}


def latent_config(stages, **fields):
    return TrainConfig(stages=tuple(stages), tokenizer=None, weight_decay=0.0, **fields)


def run(config, **kwargs):
    kwargs.setdefault("datasets", LatentSamples)
    return train(config, TEXT, progress=False, **kwargs)


def test_overfits_one_repeated_batch():
    # One batch of two clips, seen every step; sigma fixed (p_std = 0) so that the curve measures
    # memorization, not the spread of the loss over noise levels. It falls ~40x in 80 steps.
    stage = Stage(resolution=32, frames=17, steps=80, lr=3e-3, batch_size=2, schedule="constant")
    config = latent_config([stage], precision="fp32", p_mean=1.5, p_std=0.0, text_dropout=0.0)
    result = run(config, datasets=lambda s, d: LatentSamples(s, d, n=2))
    edm = [r["edm_loss"] for r in result.records]
    assert len(edm) == 80 and all(math.isfinite(x) for x in edm + result.losses)
    first, last = sum(edm[:5]) / 5, sum(edm[-5:]) / 5
    assert last < first / 10, (first, last)
    # The optimized loss is L e^-u + u: it keeps falling (below 0) as u learns the small error.
    assert sum(result.losses[-5:]) < sum(result.losses[:5]) - 5


def test_text_dropout_trains_the_unconditional_branch_guidance_uses():
    # With every sample's text dropped the run must equal one whose text encoder gives zeros (the
    # embedding guidance's unconditional branch feeds the network); with none dropped it must not.
    def zero_text(captions):
        emb, mask = TEXT(captions)
        return torch.zeros_like(emb), mask

    stage = Stage(resolution=32, frames=9, steps=3, lr=1e-3, batch_size=2)
    dropped = run(latent_config([stage], precision="fp32", text_dropout=1.0)).losses
    zeros = train(
        latent_config([stage], precision="fp32", text_dropout=0.0),
        zero_text,
        progress=False,
        datasets=LatentSamples,
    ).losses
    kept = run(latent_config([stage], precision="fp32", text_dropout=0.0)).losses
    assert dropped == zeros
    assert dropped != kept
    with pytest.raises(ValueError, match="text_dropout"):
        latent_config([stage], text_dropout=1.5)


def physics_config(steps, **fields):
    stage = Stage(
        resolution=32,
        frames=9,
        steps=steps,
        lr=1e-3,
        batch_size=2,
        image_ratio=0.5,
        aspect_ratios=("1,1", "16,9"),
        warmup_steps=1,
    )
    return TrainConfig(stages=(stage,), data=DataConfig(length=8), **fields)


def test_exact_resume_repeats_the_loss_curve(tmp_path):
    # Physics clips through the tiny tokenizer, bf16 autocast, images every other batch.
    config = physics_config(4)
    straight = train(config, TEXT, output_dir=tmp_path / "a", progress=False)
    half = train(config, TEXT, output_dir=tmp_path / "b", progress=False, stop_after=2)
    assert half.step == 2 and half.checkpoint.name == "step_00000002"
    # As if the first run had logged step 3 and crashed before its next checkpoint.
    with open(tmp_path / "b" / "train_log.jsonl", "a") as log:
        log.write(json.dumps({"step": 3, "loss": 99.0}) + "\n")
    rest = train(config, TEXT, output_dir=tmp_path / "b", progress=False, resume="latest")
    assert rest.step == 4
    assert half.losses + rest.losses == straight.losses
    for name, value in straight.module.state_dict().items():
        assert torch.equal(value, rest.module.state_dict()[name]), name
    for name, value in straight.ema.state_dict().items():
        assert torch.equal(value, rest.ema.state_dict()[name]), name
    records = read_jsonl(tmp_path / "b" / "train_log.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4] and records[2]["loss"] == rest.losses[0]
    assert [r["domain"] for r in records] == ["video", "image", "video", "image"]
    keys = {"loss", "edm_loss", "uncertainty", "lr", "samples_per_s", "sigma_mean", "sigma_min", "sigma_max"}
    assert keys <= set(records[0])
    assert records[0]["lr"] == pytest.approx(1e-3)  # warmup of 1 step, then cosine down to 0.1 lr
    assert records[-1]["lr"] < records[1]["lr"]


def test_progressive_stages_hand_off_through_the_checkpoint(tmp_path):
    stages = [
        Stage(resolution=32, frames=17, steps=3, lr=1e-3, batch_size=2),
        Stage(resolution=48, frames=9, steps=2, lr=5e-4, batch_size=2, warmup_steps=1),
    ]
    config = latent_config(stages)
    straight = run(config, output_dir=tmp_path / "a")
    assert [r["stage"] for r in straight.records] == [0, 0, 0, 1, 1]
    assert straight.records[3]["lr"] == pytest.approx(5e-4)  # a fresh optimizer and schedule

    first = run(latent_config(stages[:1]), output_dir=tmp_path / "b")
    state = load_trainer_state(first.checkpoint)
    assert (state["stage"], state["stage_step"], state["step"]) == (0, 3, 3)
    second = run(config, output_dir=tmp_path / "b", resume=first.checkpoint)
    assert first.losses + second.losses == straight.losses
    assert load_trainer_state(latest_checkpoint(tmp_path / "b" / "checkpoints"))["stage"] == 1


def test_joint_image_video_batches_follow_the_ratio(tmp_path):
    assert [step_domain(s, 0.25) for s in range(8)] == ["video"] * 3 + ["image"] + ["video"] * 3 + ["image"]
    assert [step_domain(s, 0.3) for s in range(10)].count("image") == 3
    assert [step_domain(s, 1.0) for s in range(3)] == ["image"] * 3
    assert domain_cursor(8, 0.25, "image") == 2 and domain_cursor(8, 0.25, "video") == 6

    shapes = []

    class Recording(LatentSamples):
        def __getitem__(self, index):
            sample = super().__getitem__(index)
            shapes.append(tuple(sample["latent"].shape))
            return sample

    stats = tmp_path / "image_mean_std.pt"
    torch.save((torch.zeros(16), torch.full((16,), 2.0)), stats)
    stage = Stage(
        resolution=32, frames=17, steps=6, lr=1e-3, batch_size=2, image_batch_size=3, image_ratio=1 / 3
    )
    result = run(latent_config([stage], latent_stats={"image": str(stats)}), datasets=Recording)
    assert [r["domain"] for r in result.records] == ["video", "video", "image"] * 2
    # Video batches: 2 clips of 3 latent frames; image batches: 3 one-frame samples.
    assert shapes == ([(16, 3, 4, 4)] * 4 + [(16, 1, 4, 4)] * 3) * 2


def test_video2world_training_runs():
    config = latent_config(
        [Stage(resolution=32, frames=17, steps=2, lr=1e-3, batch_size=2)],
        model="tiny-video2world",
        video2world=True,
        condition_dropout=0.0,
    )
    result = run(config)
    assert len(result.losses) == 2 and all(math.isfinite(x) for x in result.losses)


def test_plot_losses(tmp_path):
    image_module = pytest.importorskip("PIL.Image")
    log = tmp_path / "train_log.jsonl"
    records = [{"step": s, "loss": 2.0 / s - 0.5, "edm_loss": 1.0 / s} for s in range(1, 41)]
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    png = plot_losses(log, tmp_path / "plots" / "loss.png")
    with image_module.open(png) as image:
        assert image.format == "PNG" and image.size == (800, 480)
        assert len(image.getcolors(1 << 16)) > 2  # axes, labels and curves drawn on white
    log.write_text(json.dumps({"step": 1, "lr": 0.1}) + "\n")
    with pytest.raises(ValueError, match="no record with 'step' and any of"):
        plot_losses(log, tmp_path / "empty.png")
    log.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"train_log\.jsonl:1: not a JSON object"):
        plot_losses(log, tmp_path / "broken.png")


def test_ema_update_math():
    module = torch.nn.Linear(3, 2)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    ema = EMA(module, decay=0.9)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    ema.update(module)
    for name, p in module.named_parameters():
        torch.testing.assert_close(ema.shadow[name], 0.9 * before[name] + 0.1 * p.detach())
    ema.update(module)
    for name, p in module.named_parameters():
        torch.testing.assert_close(ema.shadow[name], 0.81 * before[name] + 0.19 * p.detach())
    with pytest.raises(ValueError, match="decay"):
        EMA(module, decay=1.5)


def test_lr_schedule():
    cosine = LRSchedule(steps=11, warmup_steps=2, kind="cosine", min_lr_ratio=0.1)
    assert [cosine(s) for s in (0, 1)] == [0.5, 1.0]
    assert cosine(2) == pytest.approx(1.0) and cosine(10) == pytest.approx(0.1)
    assert cosine(6) == pytest.approx(0.55)  # half way: (1 + 0.1) / 2
    linear = LRSchedule(steps=5, kind="linear", min_lr_ratio=0.0)
    assert [linear(s) for s in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    assert LRSchedule(steps=3, kind="constant")(2) == 1.0


def stage_dict(**fields):
    return {"resolution": 32, "frames": 17, "steps": 2, "lr": 1e-3, "batch_size": 2, **fields}


def test_config_from_dict_round_trip_and_missing_fields():
    data = {"stages": [stage_dict(), stage_dict(resolution=48, aspect_ratios=["1,1", "16,9"])], "seed": 3}
    config = TrainConfig.from_dict(data)
    assert config.stages[1].aspect_ratios == ("1,1", "16,9") and config.seed == 3
    assert TrainConfig.from_dict(config.to_dict()) == config

    broken = stage_dict()
    del broken["lr"]
    with pytest.raises(ValueError, match=r"stages\[1\]\.lr"):
        TrainConfig.from_dict({"stages": [stage_dict(), broken]})
    with pytest.raises(ValueError, match=r"missing required field.*stages"):
        TrainConfig.from_dict({"seed": 1})
    with pytest.raises(ValueError, match=r"unknown field.*learning_rate"):
        TrainConfig.from_dict({"stages": [stage_dict(learning_rate=1)]})
    with pytest.raises(ValueError, match="resolution must be a multiple of 16"):
        TrainConfig.from_dict({"stages": [stage_dict(resolution=40)]})
    with pytest.raises(ValueError, match="video2world=True needs a Video2World model"):
        TrainConfig(stages=(Stage(**stage_dict()),), video2world=True)
    with pytest.raises(ValueError, match="context_parallel = 2 needs a distributed run"):
        run(latent_config([Stage(**stage_dict())], context_parallel=2))


def test_config_files(tmp_path):
    yaml = pytest.importorskip("yaml")
    data = {
        "stages": [stage_dict(image_ratio=0.25)],
        "model": "tiny",
        "data": {"source": "physics", "length": 64},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "run.json").write_text(json.dumps(data))
    assert TrainConfig.load(tmp_path / "run.yaml") == TrainConfig.load(tmp_path / "run.json")
    assert TrainConfig.load(tmp_path / "run.json").data.length == 64
    del data["stages"][0]["batch_size"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"bad\.json: stages\[0\]: missing required field\(s\) stages\[0\]\.batch_size"
    ):
        TrainConfig.load(tmp_path / "bad.json")


def test_init_checkpoint_starts_from_its_weights(tmp_path):
    stage = Stage(**stage_dict())
    first = run(latent_config([stage]), output_dir=tmp_path)
    started = run(latent_config([stage], init_checkpoint=str(first.checkpoint)), stop_after=0)
    for name, value in first.module.state_dict().items():
        assert torch.equal(started.module.state_dict()[name], value), name
    for name, value in first.ema.state_dict().items():
        assert torch.equal(started.ema.state_dict()[name], value), name


def test_checkpoint_of_another_config_and_mismatched_optimizer_state(tmp_path):
    stage = Stage(resolution=32, frames=17, steps=2, lr=1e-3, batch_size=2)
    small = latent_config([stage])
    wide = latent_config([stage], model_overrides={"mlp_ratio": 2.0})
    a = run(small, output_dir=tmp_path / "a", stop_after=1)
    b = run(wide, output_dir=tmp_path / "b", stop_after=1)
    with pytest.raises(
        ValueError, match=r"layer1\.weight' has shape \(128, 64\) in the checkpoint but \(256, 64\)"
    ):
        run(small, resume=b.checkpoint)
    # The weights of run a with the optimizer state of run b: the moments do not fit the parameters.
    mixed = tmp_path / "mixed"
    shutil.copytree(a.checkpoint, mixed)
    shutil.copy(b.checkpoint / "trainer_state.pt", mixed / "trainer_state.pt")
    with pytest.raises(ValueError, match=r"optimizer state does not match.*layer1\.weight"):
        run(small, resume=mixed)
    no_uncertainty = dataclasses.replace(small, uncertainty=False)
    with pytest.raises(ValueError, match=r"unexpected keys.*logvar"):
        run(no_uncertainty, resume=a.checkpoint)


def test_data_folder_without_videos_fails_in_the_data_layer(tmp_path):
    (tmp_path / "notes.txt").write_text("no videos here")
    config = TrainConfig(stages=(Stage(**stage_dict()),), data=DataConfig(source=str(tmp_path)))
    with pytest.raises(ValueError, match="no readable video or image"):
        train(config, TEXT, progress=False)


def test_cli_trains_resumes_and_plots(tmp_path):
    config = physics_config(3).to_dict()
    (tmp_path / "config.json").write_text(json.dumps(config))
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    out = tmp_path / "run"
    common = ["--config", str(tmp_path / "config.json"), "--output-dir", str(out), "--text-length", "8"]
    assert run_train(parser.parse_args([*common, "--stop-after", "2", "--no-progress"])) == 0
    assert run_train(parser.parse_args([*common, "--resume", "--plot", "--no-progress"])) == 0
    assert [r["step"] for r in read_jsonl(out / "train_log.jsonl")] == [1, 2, 3]
    assert latest_checkpoint(out / "checkpoints").name == "step_00000003"
    assert (out / "loss.png").is_file() or importlib.util.find_spec("PIL") is None
    with pytest.raises(ValueError, match="--steps applies to the preset only"):
        run_train(parser.parse_args([*common, "--steps", "4"]))
    # Without --config: the tiny two-stage preset.
    preset = ["--output-dir", str(tmp_path / "preset"), "--text-length", "8", "--no-progress"]
    assert run_train(parser.parse_args([*preset, "--steps", "4", "--stop-after", "1"])) == 0
    assert (
        load_trainer_state(latest_checkpoint(tmp_path / "preset" / "checkpoints"))["config"]["stages"][1][
            "frames"
        ]
        == 17
    )


def distributed_workers(rank, world, directory, reference):
    torch.set_num_threads(1)
    stage = Stage(resolution=32, frames=17, steps=3, lr=1e-3, batch_size=2)
    # FSDP2 data parallel: each rank its own batches; sharded checkpoint, then an exact resume.
    fsdp = latent_config([stage])
    straight = run(fsdp, output_dir=f"{directory}/straight")
    run(fsdp, output_dir=f"{directory}/resumed", stop_after=2)
    rest = run(fsdp, output_dir=f"{directory}/resumed", resume="latest")
    assert all(math.isfinite(x) for x in straight.losses)
    assert rest.losses == straight.losses[2:], (rest.losses, straight.losses)
    assert (latest_checkpoint(f"{directory}/resumed/checkpoints") / "sharded").is_dir()
    # Context parallel over both ranks: one sequence split in two, the same loss as one process.
    cp = run(dataclasses.replace(fsdp, context_parallel=2, precision="fp32"))
    torch.testing.assert_close(torch.tensor(cp.losses), torch.tensor(reference), rtol=1e-4, atol=1e-5)


def test_fsdp2_and_context_parallel_on_two_gloo_ranks(tmp_path):
    stage = Stage(resolution=32, frames=17, steps=3, lr=1e-3, batch_size=2)
    reference = run(latent_config([stage], precision="fp32")).losses
    run_distributed(distributed_workers, 2, str(tmp_path), reference, timeout=80.0)
