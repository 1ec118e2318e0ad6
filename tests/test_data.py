"""The data layer: synthetic physics videos and captions, the ball detector, aspect-ratio buckets with
reflect padding, the bucket batch sampler, and the folder loader (videos written with video_io)."""

import dataclasses
import json
import re
import time
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cosmos_kernels.data import (
    PALETTE,
    BucketBatchSampler,
    PhysicsConfig,
    PhysicsScene,
    PhysicsVideoDataset,
    VideoFolderDataset,
    bucket_sizes,
    caption,
    collate,
    detect_balls,
    nearest_bucket,
    physics_batch,
    physics_clip,
    resize_and_pad,
    simulate,
)
from cosmos_kernels.data.folder import _frame_indices

COUNT_WORDS = {1: ("a", "an"), 2: ("two",), 3: ("three",)}


# --- physics -----------------------------------------------------------------------------------------


def test_clip_is_deterministic_under_seed_and_in_range():
    video, text, scene = physics_clip(17, 64, 64, seed=3)
    again, text_again, _ = physics_clip(17, 64, 64, seed=np.random.default_rng(3))
    other, _, _ = physics_clip(17, 64, 64, seed=4)
    assert video.shape == (3, 17, 64, 64) and video.dtype == torch.float32
    assert torch.equal(video, again) and text == text_again
    assert not torch.equal(video, other)
    assert video.min() >= -1 and video.max() <= 1
    assert scene.positions.shape == scene.velocities.shape == (17, len(scene.colors), 2)


def test_batch_stacks_seeded_clips():
    videos, captions = physics_batch(3, 9, 32, 48, seed=5)
    assert videos.shape == (3, 3, 9, 32, 48) and len(captions) == 3
    video, text, _ = physics_clip(9, 32, 48, seed=[5, 1])
    assert torch.equal(videos[1], video) and captions[1] == text
    assert torch.equal(physics_batch(3, 9, 32, 48, seed=5)[0], videos)


def test_clip_is_fast():
    physics_clip(17, 64, 64, seed=0)
    start = time.perf_counter()
    for seed in range(20):
        physics_clip(17, 64, 64, seed=seed)
    # A few ms each on one core; the bound leaves room for a loaded CI machine.
    assert (time.perf_counter() - start) / 20 < 0.05


def test_gravity_accelerates_downward_between_bounces():
    config = PhysicsConfig(min_balls=1, max_balls=1)
    for seed in range(10):
        scene = simulate(33, 64, 64, np.random.default_rng(seed), config)
        bounced = {frame for frame, _, _ in scene.bounces}
        vy = scene.velocities[:, 0, 1]
        free = [t for t in range(1, 33) if t not in bounced]
        assert free, "every frame had a bounce"
        # Exact constant acceleration: vy grows by g (pixels per frame²) each frame without a bounce.
        np.testing.assert_allclose(vy[free] - vy[np.array(free) - 1], scene.gravity, rtol=1e-9)
        assert scene.gravity == pytest.approx(0.004 * 64)


def test_energy_is_conserved_and_balls_stay_inside():
    collided = 0
    for seed in range(30):
        scene = simulate(33, 48, 80, np.random.default_rng(seed), PhysicsConfig(min_balls=2, max_balls=3))
        energy = scene.energy()
        np.testing.assert_allclose(energy, energy[0], rtol=1e-6)
        r = scene.radii[None, :]
        x, y = scene.positions[..., 0], scene.positions[..., 1]
        assert (x >= r - 1e-9).all() and (x <= 80 - r + 1e-9).all()
        assert (y >= r - 1e-9).all() and (y <= 48 - r + 1e-9).all()
        collided += bool(scene.collisions)
    assert collided >= 5, "too few scenes with ball-ball collisions to test them"


def test_collisions_conserve_kinetic_energy_and_momentum_without_gravity():
    config = PhysicsConfig(min_balls=3, max_balls=3, gravity=0.0, speed=(0.03, 0.05))
    for seed in range(20):
        scene = simulate(33, 64, 64, np.random.default_rng(seed), config)
        kinetic = (scene.radii**2 * (scene.velocities**2).sum(-1)).sum(-1)
        np.testing.assert_allclose(kinetic, kinetic[0], rtol=1e-9)
        # Between frames with no wall bounce, total momentum is unchanged by ball-ball collisions.
        momentum = (scene.radii[:, None] ** 2 * scene.velocities).sum(1)
        bounced = {frame for frame, _, _ in scene.bounces}
        for t in range(1, 33):
            if t not in bounced:
                np.testing.assert_allclose(momentum[t], momentum[t - 1], atol=1e-9)


def _scene(colors, vx, bounces=(), collisions=(), frames=9):
    n = len(colors)
    positions = np.full((frames, n, 2), 32.0)
    velocities = np.zeros((frames, n, 2))
    velocities[..., 0] = vx
    velocities[..., 1] = 1.0
    return PhysicsScene(
        positions=positions,
        velocities=velocities,
        radii=np.full(n, 5.0),
        colors=list(colors),
        gravity=0.25,
        background=np.zeros((3, 64, 64), np.float32),
        background_name="black",
        collisions=list(collisions),
        bounces=list(bounces),
    )


def test_caption_wording():
    assert (
        caption(_scene(["red", "red"], -3.0, bounces=[(4, 0, "floor")])) == "two red balls bounce to the left"
    )
    assert (
        caption(_scene(["blue", "yellow"], 0.0, collisions=[(3, 0, 1)]))
        == "a blue ball and a yellow ball collide"
    )
    assert caption(_scene(["orange"], 2.0)) == "an orange ball falls to the right"
    assert (
        caption(_scene(["red", "green", "red"], 2.0, collisions=[(3, 0, 1)]))
        == "two red balls and a green ball collide and move to the right"
    )
    assert caption(_scene(["white"], 0.0, frames=1)) == "a white ball on a black background"


def test_caption_names_the_simulated_colors_and_count():
    for seed in range(30):
        _, text, scene = physics_clip(17, 64, 64, seed=seed)
        for color in set(scene.colors):
            count = scene.colors.count(color)
            assert re.search(rf"\b({'|'.join(COUNT_WORDS[count])}) {color} balls?\b", text), (
                text,
                scene.colors,
            )
        for color in set(PALETTE) - set(scene.colors):
            assert color not in text
        assert ("collide" in text) == bool(scene.collisions)


def test_detector_recovers_ball_positions():
    config = PhysicsConfig(colors=("red", "green", "blue", "yellow"), min_balls=1, max_balls=3)
    checked = 0
    for seed in range(20):
        video, _, scene = physics_clip(9, 64, 64, seed=seed, config=config)
        if len(set(scene.colors)) < len(scene.colors):
            continue  # same-colored balls merge into one centroid
        for t in range(9):
            p, r = scene.positions[t], scene.radii
            gap = np.hypot(*(p[:, None] - p[None]).transpose(2, 0, 1)) - (r[:, None] + r[None])
            if (gap + np.eye(len(r)) * 1e9 < 1).any():
                continue  # overlapping balls hide part of each other
            found = detect_balls(video[:, t])
            assert set(found) == set(scene.colors)
            for i, color in enumerate(scene.colors):
                assert np.hypot(*(np.array(found[color]) - p[i])) < 0.5
                checked += 1
    assert checked > 50


def test_detector_rejects_bad_frames():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        detect_balls(torch.zeros(1, 3, 8, 8))
    assert detect_balls(torch.full((3, 16, 16), -0.6)) == {}


def test_physics_dataset_image_video_mix_and_buckets():
    dataset = PhysicsVideoDataset(
        40, num_frames=17, resolution=32, image_fraction=0.4, aspect_ratios=("1,1", "16,9")
    )
    keys = [dataset.bucket_key(i) for i in range(40)]
    assert {frames for _, frames in keys} == {1, 17} and {ratio for ratio, _ in keys} == {"1,1", "16,9"}
    sizes = bucket_sizes(32, ("1,1", "16,9"))
    for i in (keys.index(("1,1", 1)), keys.index(("16,9", 17))):
        sample = dataset[i]
        ratio, frames = keys[i]
        assert sample["video"].shape == (3, frames, *sizes[ratio])
        assert sample["padding_mask"].shape == (1, *sizes[ratio]) and sample["padding_mask"].sum() == 0
        assert ("background" in sample["caption"]) == (frames == 1)
        assert torch.equal(sample["video"], dataset[i]["video"])
    assert all(PhysicsVideoDataset(10, image_fraction=0.0).bucket_key(i)[1] == 17 for i in range(10))
    assert all(PhysicsVideoDataset(10, image_fraction=1.0).bucket_key(i)[1] == 1 for i in range(10))
    with pytest.raises(IndexError):
        dataset.bucket_key(40)


@pytest.mark.parametrize("num_frames", [0, 16, 18])
def test_physics_dataset_rejects_frame_counts_the_tokenizer_cannot_take(num_frames):
    with pytest.raises(ValueError, match="num_frames must be 1 \\+ 8k"):
        PhysicsVideoDataset(4, num_frames=num_frames)


# --- buckets -----------------------------------------------------------------------------------------


def test_bucket_sizes_and_assignment():
    sizes = bucket_sizes(64)
    assert sizes == {"1,1": (64, 64), "4,3": (64, 80), "3,4": (80, 64), "16,9": (64, 112), "9,16": (112, 64)}
    assert all(h % 16 == 0 and w % 16 == 0 for h, w in bucket_sizes(704).values())
    assert nearest_bucket(1080, 1920) == "16,9" and nearest_bucket(1920, 1080) == "9,16"
    assert nearest_bucket(480, 640) == "4,3" and nearest_bucket(640, 480) == "3,4"
    assert nearest_bucket(100, 105) == "1,1" and nearest_bucket(100, 400) == "16,9"
    assert nearest_bucket(480, 640, ("1,1", "16,9")) == "1,1"
    with pytest.raises(ValueError, match="resolution"):
        bucket_sizes(60)
    with pytest.raises(ValueError, match="ratios"):
        bucket_sizes(64, ("2,1",))


def test_reflect_padding_and_mask():
    video = torch.rand(3, 2, 48, 64) * 2 - 1
    out, mask, image_size = resize_and_pad(video, (64, 64))  # fits as is: 8 rows above, 8 below
    assert out.shape == (3, 2, 64, 64)
    assert torch.equal(out[:, :, 8:56], video)
    for k in range(8):  # reflect: row 8 - 1 - k mirrors row 8 + 1 + k, the edge row is not repeated
        assert torch.equal(out[:, :, 7 - k], video[:, :, 1 + k])
        assert torch.equal(out[:, :, 56 + k], video[:, :, 46 - k])
    expected = torch.ones(1, 64, 64)
    expected[:, 8:56] = 0
    assert torch.equal(mask, expected)
    assert image_size.tolist() == [64, 64, 48, 64]


def test_resize_keeps_aspect_and_falls_back_to_edge_padding():
    video = torch.linspace(-1, 1, 32 * 64).reshape(1, 1, 32, 64).expand(3, 1, 32, 64)
    out, mask, image_size = resize_and_pad(video, (64, 112))  # scaled by 1.75 to 56 x 112
    assert image_size.tolist() == [64, 112, 56, 112]
    assert mask[0, :, 0].tolist() == [1.0] * 4 + [0.0] * 56 + [1.0] * 4 and mask[0, 4].sum() == 0
    assert out.min() >= -1 and out.max() <= 1
    thin = torch.rand(3, 1, 4, 64)
    out, mask, _ = resize_and_pad(thin, (64, 64))  # 30 rows above a 4-row image: too many to reflect
    assert torch.equal(out[:, :, 0], thin[:, :, 0]) and torch.equal(out[:, :, -1], thin[:, :, -1])
    assert mask.sum() == 60 * 64


def test_bucket_batch_sampler_batches_one_bucket_at_a_time():
    dataset = PhysicsVideoDataset(
        30, num_frames=9, resolution=16, image_fraction=0.3, aspect_ratios=("1,1", "4,3")
    )
    sampler = BucketBatchSampler(dataset, batch_size=4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(30))
    assert all(len({dataset.bucket_key(i) for i in b}) == 1 for b in batches)
    assert list(sampler) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    dropped = BucketBatchSampler(dataset, batch_size=4, drop_last=True)
    assert all(len(b) == 4 for b in dropped) and len(list(dropped)) == len(dropped)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    batch = next(iter(loader))
    b = len(batch["caption"])
    assert batch["video"].dim() == 5 and batch["video"].shape[0] == b
    assert batch["padding_mask"].shape[:2] == (b, 1) and batch["fps"].shape == (b,)
    with pytest.raises(ValueError, match="batch_size"):
        BucketBatchSampler(dataset, batch_size=0)
    with pytest.raises(TypeError, match="bucket_key"):
        BucketBatchSampler(list(range(4)), batch_size=2)


def test_collate_refuses_mixed_shapes():
    samples = [{"video": torch.zeros(3, 1, 16, 16)}, {"video": torch.zeros(3, 9, 16, 16)}]
    with pytest.raises(ValueError, match="one bucket"):
        collate(samples)


# --- folder ------------------------------------------------------------------------------------------


@pytest.fixture
def media_folder(tmp_path):
    video_io = pytest.importorskip("cosmos_kernels.video_io")
    pytest.importorskip("av")
    image = pytest.importorskip("PIL.Image")
    # Gray frames whose level rises by 8 per frame, so the frame a sample came from can be read back.
    levels = lambda n: (torch.arange(n) * 8 + 40).to(torch.uint8)  # noqa: E731
    long = levels(20)[:, None, None, None].expand(20, 48, 64, 3).contiguous()  # 4:3 landscape
    short = levels(5)[:, None, None, None].expand(5, 64, 32, 3).contiguous()  # 1:2 portrait
    video_io.write_video(tmp_path / "long.mp4", long, fps=12, crf=0)
    (tmp_path / "sub").mkdir()
    video_io.write_video(tmp_path / "sub" / "short.mp4", short, fps=24, crf=0)
    image.fromarray(np.full((40, 40, 3), 200, np.uint8)).save(tmp_path / "still.png")
    (tmp_path / "long.txt").write_text("a gray screen brightens\n")
    (tmp_path / "captions.jsonl").write_text(json.dumps({"file": "sub/short.mp4", "caption": "tall"}) + "\n")
    (tmp_path / "captions.csv").write_text("file,caption\nstill.png,a light square\nlong.mp4,overridden\n")
    (tmp_path / "notes.md").write_text("not media")
    return tmp_path


def test_folder_dataset_reads_videos_images_and_captions(media_folder):
    dataset = VideoFolderDataset(media_folder, num_frames=17, resolution=32)
    names = [f.path.relative_to(media_folder).as_posix() for f in dataset.files]
    assert names == ["long.mp4", "still.png", "sub/short.mp4"]
    assert [f.caption for f in dataset.files] == ["a gray screen brightens", "a light square", "tall"]
    assert [dataset.bucket_key(i) for i in range(3)] == [("4,3", 17), ("1,1", 1), ("9,16", 17)]

    long = dataset[0]
    assert long["video"].shape == (3, 17, 32, 48) and long["fps"] == 12.0
    level = ((long["video"][:, :, 16, 24].mean(0) + 1) / 2 * 255).numpy()
    np.testing.assert_allclose(np.diff(level), 8, atol=1.5)  # 17 consecutive frames of the 20
    # 48x64 scaled by 2/3 to 32x43 in the 32x48 bucket: 2 padded columns left, 3 right.
    assert long["image_size"].tolist() == [32, 48, 32, 43]
    assert long["padding_mask"][0, 0].tolist() == [1.0] * 2 + [0.0] * 43 + [1.0] * 3

    still = dataset[1]
    assert still["video"].shape == (3, 1, 32, 32) and still["padding_mask"].sum() == 0
    assert still["video"].mean().item() == pytest.approx(200 / 255 * 2 - 1, abs=0.02)

    short = dataset[2]  # 5 frames stretched to 17 by repeating them evenly
    level = ((short["video"][:, :, 28, 16].mean(0) + 1) / 2 * 255).round().numpy()
    assert np.all(np.diff(level) >= -1.5) and len(np.unique(np.round(level / 8))) == 5
    batch = collate([dataset[0], dataset[0]])
    assert batch["video"].shape == (2, 3, 17, 32, 48) and batch["caption"] == ["a gray screen brightens"] * 2


def test_folder_dataset_skips_a_corrupt_file_with_a_warning(media_folder):
    (media_folder / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    with pytest.warns(UserWarning, match="broken.mp4"):
        dataset = VideoFolderDataset(media_folder, num_frames=9, resolution=32)
    assert len(dataset) == 3 and all(f.path.name != "broken.mp4" for f in dataset.files)


def test_folder_dataset_without_media_is_a_clear_error(tmp_path):
    pytest.importorskip("av")
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tmp_path))}.*\.mp4.*\.png"):
        VideoFolderDataset(tmp_path)
    (tmp_path / "bad.mov").write_bytes(b"garbage")
    with warnings.catch_warnings(record=True), pytest.raises(ValueError, match="no readable video or image"):
        warnings.simplefilter("always")
        VideoFolderDataset(tmp_path)
    with pytest.raises(ValueError, match="is not a folder"):
        VideoFolderDataset(tmp_path / "missing")


def test_bad_captions_file_is_a_clear_error(tmp_path):
    (tmp_path / "captions.jsonl").write_text('{"name": "x.mp4"}\n')
    with pytest.raises(ValueError, match=r"captions.jsonl:1"):
        VideoFolderDataset(tmp_path)


def test_folder_dataset_counts_frames_without_container_metadata_and_survives_a_wrong_count(tmp_path):
    video_io = pytest.importorskip("cosmos_kernels.video_io")
    pytest.importorskip("av")
    frames = (torch.arange(12) * 16 + 40).to(torch.uint8)[:, None, None, None].expand(12, 32, 32, 3)
    video_io.write_video(tmp_path / "clip.mkv", frames.contiguous(), fps=8, crf=0)  # mkv has no count
    with pytest.warns(UserWarning, match="1 of 1 files .* no caption"):
        dataset = VideoFolderDataset(tmp_path, num_frames=9, resolution=16)
    assert dataset.files[0].length == 12 and dataset.files[0].caption == ""
    window = dataset[0]["video"]
    # A container that claims more frames than it has: the window drawn for 500 frames starts past
    # the real end, so the loader falls back to decoding all frames and choosing among them.
    dataset.files[0] = dataclasses.replace(dataset.files[0], length=500)
    assert _frame_indices(500, 9, 0, 0)[0] >= 12
    sample = dataset[0]
    assert sample["video"].shape == window.shape == (3, 9, 16, 16)
    level = ((sample["video"][:, :, 8, 8].mean(0) + 1) / 2 * 255).numpy()
    np.testing.assert_allclose(np.diff(level), 16, atol=1.5)
