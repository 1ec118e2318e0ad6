"""Camera control: Plücker embeddings against a transcription of Cosmos/NeMo's recipe, the 24-channel
camera DiT, the Video2World pipeline with a camera condition, and bad input."""

import json

import numpy as np
import pytest
import torch

from cosmos_kernels.data import panning_clip, render, simulate
from cosmos_kernels.models import (
    HashTextEncoder,
    build_dit,
    build_tokenizer,
    dit_config,
    load_cosmos_state_dict,
    plucker_embeddings,
)
from cosmos_kernels.pipelines import SamplingOptions, Video2WorldPipeline, read_camera_trajectory

# ---- The oracle: NeMo nemo/collections/diffusion/data/camera.py and camera_ctrl_utils.py @53697ac and
# Cosmos cosmos1/models/diffusion/nemo/inference/camera_ctrl.py (create_plucker_embeddings_from_pose_list,
# prepare_data_batch), transcribed with their numpy/torch steps and dtypes.


class _Pose:
    def __call__(self, R=None, t=None):
        if not isinstance(R, torch.Tensor):
            R = torch.tensor(R)
        if not isinstance(t, torch.Tensor):
            t = torch.tensor(t)
        return torch.cat([R.float(), t.float()[..., None]], dim=-1)

    def invert(self, pose):
        R, t = pose[..., :3], pose[..., 3:]
        R_inv = R.transpose(-1, -2)
        t_inv = (-R_inv @ t)[..., 0]
        return self(R=R_inv, t=t_inv)

    def compose_pair(self, pose_a, pose_b):
        R_a, t_a = pose_a[..., :3], pose_a[..., 3:]
        R_b, t_b = pose_b[..., :3], pose_b[..., 3:]
        R_new = R_b @ R_a
        t_new = (R_b @ t_a + t_b)[..., 0]
        return self(R=R_new, t=t_new)


_pose = _Pose()


def _to_hom(X):
    return torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)


def _img2cam(X, cam_intr):
    return X.float() @ cam_intr.float().inverse().transpose(-1, -2)


def _cam2world(X, pose):
    return _to_hom(X.float()) @ _pose.invert(pose.float()).transpose(-1, -2)


def _get_center_and_ray(pose, intr, image_size):
    H, W = image_size
    y_range = torch.arange(H, dtype=torch.float32).add_(0.5)
    x_range = torch.arange(W, dtype=torch.float32).add_(0.5)
    Y, X = torch.meshgrid(y_range, x_range, indexing="ij")
    xy_grid = torch.stack([X, Y], dim=-1).view(-1, 2)
    xy_grid = xy_grid.repeat(len(pose), 1, 1)
    grid_3D = _img2cam(_to_hom(xy_grid), intr)
    center_3D = torch.zeros_like(grid_3D)
    grid_3D = _cam2world(grid_3D, pose)
    center_3D = _cam2world(center_3D, pose)
    return center_3D, grid_3D - center_3D


def _plucker_coordinates(pose, intr, width, height):
    center, ray = _get_center_and_ray(pose, intr, [height, width])
    ray = ray / torch.norm(ray, dim=-1, keepdim=True)
    return torch.cat([torch.cross(center, ray, dim=-1), ray], dim=-1)


def _get_relative_pose(pose_list):
    poses = torch.stack(list(pose_list), dim=0)
    pose_0_inv = _pose.invert(poses[:1])
    rel_poses = _pose.compose_pair(pose_0_inv, poses)
    rel_poses_4x4 = torch.eye(4).repeat(len(rel_poses), 1, 1)
    rel_poses_4x4[:, :3, :] = rel_poses
    return rel_poses_4x4.numpy()


def _normalize_camera_trajectory_to_unit_sphere(pose_list):
    translation = np.array([pose["translation"] for pose in pose_list])
    diff = translation[:, None, :] - translation[None, :, :]
    max_distance = np.max(np.linalg.norm(diff, axis=-1))
    for pose in pose_list:
        trans = np.array(pose["translation"])
        trans /= max_distance
        pose["translation"] = trans.tolist()


def _estimate_pose_list_to_plucker_embedding(pose_list, ratio_h_lat, ratio_w_lat, image_size):
    h_pad, w_pad, h_resize, w_resize = image_size
    H, W = int(h_pad.item() // ratio_h_lat), int(w_pad.item() // ratio_w_lat)
    ratio_w, ratio_h = w_resize.item() / w_pad.item(), h_resize.item() / h_pad.item()
    intrs = []
    for p in pose_list:
        intrinsic = torch.tensor(p["intrinsics"])
        intrinsic[2, 2] = 1
        intrinsic[0, :] *= W * ratio_w
        intrinsic[1, :] *= H * ratio_h
        intrs.append(intrinsic)
    mv_pose = [
        torch.cat([torch.tensor(p["rotation"]), torch.tensor(p["translation"]).unsqueeze(1)], dim=1)
        for p in pose_list
    ]
    mv_pose = torch.tensor(np.stack(_get_relative_pose(mv_pose)))[:, :3]
    return _plucker_coordinates(mv_pose, torch.stack(intrs).view(len(pose_list), 3, 3), W, H), H, W


def cosmos_plucker(camera_data, num_frames, image_size, padding_mask):
    """Cosmos's inference path: transforms.json dict -> (1, N, 6, h, w) * (1 - padding_mask)."""
    intrinsic = [
        [camera_data["fl_x"], 0, camera_data["cx"]],
        [0, camera_data["fl_y"], camera_data["cy"]],
        [0, 0, 1],
    ]
    pose_list = []
    for i, frame in enumerate(camera_data["frames"]):
        if i < num_frames:
            rows = frame["transform_matrix"][:3]
            pose_list.append(
                {
                    "intrinsics": intrinsic,
                    "rotation": [r[:3] for r in rows],
                    "translation": [r[-1] for r in rows],
                }
            )
    _normalize_camera_trajectory_to_unit_sphere(pose_list)
    coords, h, w = _estimate_pose_list_to_plucker_embedding(pose_list, 8, 8, image_size)
    emb = coords.view(len(pose_list), h, w, 6).permute(0, 3, 1, 2).unsqueeze(0)
    mask = torch.nn.functional.interpolate(padding_mask.unsqueeze(0), size=(h, w), mode="nearest")
    return emb * (1 - mask)


# ---- helpers


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _trajectory(rng, frames):
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        poses[i, :3, :3] = _random_rotation(rng)
        poses[i, :3, 3] = rng.normal(size=3) * 3
    return poses


def _camera_data(rng, frames):
    return {
        "fl_x": 1100.0 + rng.uniform(0, 50),
        "fl_y": 1090.0,
        "cx": 640.0 + rng.uniform(-5, 5),
        "cy": 360.0,
        "frames": [{"transform_matrix": pose.tolist()} for pose in _trajectory(rng, frames)],
    }


# ---- Plücker embeddings


@pytest.mark.parametrize("padded", [False, True])
def test_plucker_matches_cosmos_recipe(padded):
    rng = np.random.default_rng(0)
    data = _camera_data(rng, 7)
    # A 720x1280 video resized to 704x1252 and padded to 704x1280, as Cosmos's reader does.
    image_size = (
        torch.tensor([704.0, 1280.0, 704.0, 1252.0]) if padded else torch.tensor([64.0, 96.0, 64.0, 96.0])
    )
    pad = torch.zeros(1, int(image_size[0]), int(image_size[1]))
    if padded:
        pad[:, :, :14] = 1
        pad[:, :, -14:] = 1
    expected = cosmos_plucker(data, 5, image_size, pad)
    h, w = int(image_size[0]) // 8, int(image_size[1]) // 8
    intrinsics = torch.tensor([[data["fl_x"], 0, data["cx"]], [0, data["fl_y"], data["cy"]], [0, 0, 1.0]])
    poses = torch.tensor([f["transform_matrix"] for f in data["frames"][:5]], dtype=torch.float64)
    ratio = (float(image_size[2] / image_size[0]), float(image_size[3] / image_size[1]))
    got = plucker_embeddings(intrinsics, poses, (h, w), pad, resize_ratio=ratio)
    assert got.shape == (6, 5, h, w) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected[0].transpose(0, 1), atol=2e-5, rtol=1e-4)
    if padded:  # the padded columns are zero
        assert got[..., :1].abs().max() == 0 and got[..., -1:].abs().max() == 0


def test_plucker_batched_and_per_frame_intrinsics():
    rng = np.random.default_rng(1)
    poses = torch.tensor(np.stack([_trajectory(rng, 4) for _ in range(2)]), dtype=torch.float32)
    k = torch.tensor([[20.0, 0, 8], [0, 20, 8], [0, 0, 1]])
    batched = plucker_embeddings(k, poses, (3, 5))
    assert batched.shape == (2, 6, 4, 3, 5)
    for b in range(2):
        torch.testing.assert_close(batched[b], plucker_embeddings(k.expand(4, 3, 3), poses[b], (3, 5)))
    # frame 0 is the origin after the relative-pose step: zero moment, and unit directions everywhere
    assert batched[:, :3, 0].abs().max() < 1e-5
    torch.testing.assert_close(batched[:, 3:].norm(dim=1), torch.ones(2, 4, 3, 5))


def test_plucker_static_camera_is_finite():
    poses = torch.eye(4).repeat(3, 1, 1)
    out = plucker_embeddings(torch.eye(3), poses, (2, 2))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("intrinsics", "poses", "latent_size", "match"),
    [
        (torch.eye(3), torch.eye(3).repeat(4, 1, 1), (2, 2), r"poses must be \(N, 4, 4\)"),
        (torch.eye(3), torch.eye(4), (2, 2), "poses must be 3-D or 4-D"),
        (torch.eye(3).repeat(3, 1, 1), torch.eye(4).repeat(4, 1, 1), (2, 2), r"one per frame \(4, 3, 3\)"),
        (torch.eye(4), torch.eye(4).repeat(4, 1, 1), (2, 2), "intrinsics must be 3x3"),
        (torch.eye(3), torch.eye(4).repeat(4, 1, 1), (2,), r"latent_size must be \(h, w\)"),
        (torch.eye(3), torch.eye(4).repeat(4, 1, 1), (2, 0), r"latent_size\[1\] must be an int >= 1"),
    ],
)
def test_plucker_bad_input(intrinsics, poses, latent_size, match):
    with pytest.raises((TypeError, ValueError), match=match):
        plucker_embeddings(intrinsics, poses, latent_size)


def test_plucker_bad_padding_mask():
    with pytest.raises(ValueError, match="padding_mask"):
        plucker_embeddings(torch.eye(3), torch.eye(4).repeat(2, 3, 1, 1), (2, 2), torch.zeros(3, 1, 8, 8))


# ---- the camera DiT


def test_camera_dit_7b_on_meta_channels_and_keys():
    config = dit_config("cosmos-7b-video2world-camera")
    assert (config.in_channels, config.pose_channels, config.latent_channels) == (23, 6, 16)
    assert config.extra_per_block_abs_pos_emb
    with torch.device("meta"):
        net = build_dit("cosmos-7b-video2world-camera")
        base = build_dit("cosmos-7b-video2world")
    d, p = config.model_channels, config.patch_spatial
    # 24 input channels (x, mask, pose, padding) through the bias-free patch Linear
    assert net.x_embedder.proj[1].weight.shape == (d, 24 * p * p * config.patch_temporal)
    count = sum(t.numel() for t in net.parameters())
    assert count == sum(t.numel() for t in base.parameters()) + 6 * p * p * d
    assert set(net.state_dict()) == set(base.state_dict())


def test_camera_dit_loads_cosmos_state_dict():
    net = build_dit("tiny-video2world-camera")
    state = {f"net.{k}": v.clone() + 1 for k, v in net.state_dict().items()}
    other = build_dit("tiny-video2world-camera")
    load_cosmos_state_dict(other, state)
    torch.testing.assert_close(other.x_embedder.proj[1].weight, net.x_embedder.proj[1].weight + 1)


def _inputs(batch=1, frames=3):
    x = torch.randn(batch, 16, frames, 4, 4)
    return x, torch.zeros(batch), torch.randn(batch, 3, 1024)


def test_camera_dit_channel_order_and_slicing():
    torch.manual_seed(0)
    net = build_dit("tiny-video2world-camera").eval()
    x, t, emb = _inputs()
    mask = torch.zeros(1, 1, 3, 4, 4)
    mask[:, :, 0] = 1
    pose = torch.randn(1, 6, 5, 4, 4)
    out = net(x, t, emb, condition_video_input_mask=mask, condition_video_pose=pose)
    torch.testing.assert_close(
        out, net(x, t, emb, condition_video_input_mask=mask, condition_video_pose=pose[:, :, :3])
    )
    # the patch embedding sees [x (16), mask (1), pose (6), padding (1)]: a Linear over (c, t, p1, p2)
    inputs = net._input_channels(x, None, mask, pose[:, :, :3])
    cat = torch.cat([x, mask, pose[:, :, :3], torch.zeros(1, 1, 3, 4, 4)], dim=1)
    torch.testing.assert_close(inputs, cat)
    tokens = net.x_embedder(inputs).flatten(1, 3)
    patches = cat.reshape(1, 24, 3, 2, 2, 2, 2).permute(0, 2, 3, 5, 1, 4, 6).reshape(1, 12, 96)
    torch.testing.assert_close(tokens, patches @ net.x_embedder.proj[1].weight.T)
    assert not torch.allclose(
        out, net(x, t, emb, condition_video_input_mask=mask, condition_video_pose=0 * pose)
    )


@pytest.mark.parametrize(
    ("pose", "match"),
    [
        (None, "needs condition_video_pose"),
        (torch.randn(1, 6, 2, 4, 4), r"N >= T=3"),
        (torch.randn(1, 5, 3, 4, 4), "Plücker embeddings"),
        (torch.randn(1, 6, 3, 2, 2), "Plücker embeddings"),
        (torch.randn(6, 3, 4, 4), r"\(B=1, 6"),
    ],
)
def test_camera_dit_bad_pose(pose, match):
    net = build_dit("tiny-video2world-camera")
    with pytest.raises(ValueError, match=match):
        net(*_inputs(), condition_video_pose=pose)


def test_pose_rejected_by_plain_video2world():
    with pytest.raises(ValueError, match="camera-control models"):
        build_dit("tiny-video2world")(*_inputs(), condition_video_pose=torch.zeros(1, 6, 3, 4, 4))


def test_config_rejects_pose_channels_without_video_extend():
    with pytest.raises(ValueError, match="pose_channels need video_extend"):
        dit_config("tiny", pose_channels=6)


# ---- pipeline, trajectory files and the demo's data


def _pipeline():
    torch.manual_seed(0)
    net = build_dit("tiny-video2world-camera", model_channels=32, num_heads=2, num_blocks=1).eval()
    tok = build_tokenizer("tiny-cv8x8x8").eval()
    return Video2WorldPipeline(net, HashTextEncoder(max_length=4), tok)


def test_pipeline_gives_pose_to_both_branches(monkeypatch):
    pipe = _pipeline()
    seen = []
    forward = pipe.net.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("condition_video_pose"))
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.net, "forward", spy)
    video = torch.zeros(1, 3, 1, 16, 16)
    pose = torch.randn(1, 6, 17, 2, 2)
    out = pipe("a ball", video, num_frames=9, options=SamplingOptions(num_steps=2, guidance=2.0), camera=pose)
    assert out.video.shape == (1, 3, 9, 16, 16)
    # guidance > 1 runs a conditional and an unconditional pass per step (maybe as one batch), both with
    # the pose
    assert sum(p.shape[0] for p in seen) >= 4
    assert all(torch.equal(chunk, pose) for p in seen for chunk in p.split(1))


def test_pipeline_rejects_camera_shape():
    pipe = _pipeline()
    with pytest.raises(ValueError, match="camera"):
        pipe("a ball", torch.zeros(1, 3, 1, 16, 16), num_frames=9, camera=torch.zeros(1, 6, 1, 2, 2))
    with pytest.raises(ValueError, match="camera-control"):
        Video2WorldPipeline(
            build_dit("tiny-video2world", model_channels=32, num_heads=2, num_blocks=1),
            HashTextEncoder(max_length=4),
            build_tokenizer("tiny-cv8x8x8"),
        )("a ball", torch.zeros(1, 3, 1, 16, 16), num_frames=9, camera=torch.zeros(1, 6, 2, 2, 2))


def test_read_camera_trajectory(tmp_path):
    rng = np.random.default_rng(2)
    data = _camera_data(rng, 6)
    path = tmp_path / "camera.json"
    path.write_text(json.dumps(data))
    intrinsics, poses = read_camera_trajectory(path, 5)
    assert intrinsics.shape == (3, 3) and poses.shape == (5, 4, 4)
    assert intrinsics[0, 0] == data["fl_x"] and intrinsics[1, 2] == data["cy"]
    with pytest.raises(ValueError, match="6 frames, the video has 9"):
        read_camera_trajectory(path, 9)
    data["frames"][1]["transform_matrix"] = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"frames\[1\]\.transform_matrix must be a 4x4"):
        read_camera_trajectory(path, 5)
    path.write_text(json.dumps({"frames": []}))
    with pytest.raises(ValueError, match="fl_x"):
        read_camera_trajectory(path, 1)


def test_panning_clip_is_a_moving_window():
    video, caption, pan = panning_clip(9, 16, 16, seed=3, scene_size=(40, 40), speed=1.0)
    assert video.shape == (3, 9, 16, 16) and isinstance(caption, str)
    assert pan.offsets.shape == (9, 2) and pan.poses.shape == (9, 4, 4)
    step = pan.offsets[1:] - pan.offsets[:-1]
    np.testing.assert_allclose(np.linalg.norm(step, axis=-1), 1.0, rtol=1e-6)
    # the camera moves with the window: x by the horizontal offset, y by the vertical one, no rotation
    np.testing.assert_allclose(pan.poses[:, :2, 3], pan.offsets - pan.offsets[:1])
    np.testing.assert_allclose(pan.poses[:, :3, :3], np.tile(np.eye(3), (9, 1, 1)))
    emb = plucker_embeddings(torch.from_numpy(pan.intrinsics), torch.from_numpy(pan.poses), (2, 2))
    assert emb.shape == (6, 9, 2, 2)


def test_window_render_is_a_crop_of_the_scene():
    rng = np.random.default_rng(4)
    scene = simulate(3, 24, 24, rng)
    offsets = np.array([[0.0, 0.0], [3.0, 1.0], [5.0, 7.0]])
    window = render(scene, (offsets, 12, 12))
    full = render(scene)
    for t, (x, y) in enumerate(offsets.astype(int)):
        torch.testing.assert_close(window[:, t], full[:, t, y : y + 12, x : x + 12])
    with pytest.raises(ValueError, match="window must stay a pixel inside"):
        render(scene, (np.array([[12.5, 0.0]] * 3), 12, 12))


def test_cli_generate_with_camera(tmp_path, capsys):
    from cosmos_kernels import cli
    from cosmos_kernels.video_io import read_video, write_video

    given = tmp_path / "given.mp4"
    write_video(given, torch.zeros(1, 16, 16, 3, dtype=torch.uint8), fps=24)
    camera = tmp_path / "camera.json"
    camera.write_text(json.dumps(_camera_data(np.random.default_rng(5), 9)))
    out = tmp_path / "out.mp4"
    args = ["generate", "--model", "tiny-video2world-camera", "--prompt", "x", "--input-video", str(given)]
    more = ["--frames", "9", "--steps", "1", "--out", str(out), "--contact-sheet", str(tmp_path / "s.png")]
    assert cli.main([*args, *more, "--camera", str(camera)]) == 0
    assert read_video(out)[0].shape == (9, 16, 16, 3)
    capsys.readouterr()
    assert cli.main([*args, *more]) == 2
    assert "take --camera" in capsys.readouterr().err
    assert cli.main([*args, *more, "--camera", str(camera), "--frames", "17"]) == 2
    assert "9 frames, the video has 17" in capsys.readouterr().err


class _PosedLatents(torch.utils.data.Dataset):
    def __init__(self):
        self.latents = torch.randn(4, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        self.poses = torch.randn(4, 6, 3, 4, 4, generator=torch.Generator().manual_seed(1))

    def __len__(self):
        return 4

    def bucket_key(self, index):
        return "1,1", 17

    def __getitem__(self, index):
        return {
            "latent": self.latents[index],
            "caption": "a ball",
            "fps": 24.0,
            "condition_video_pose": self.poses[index],
        }


def test_trainer_gives_the_batch_pose_to_the_network(monkeypatch):
    from cosmos_kernels.models import GeneralDIT
    from cosmos_kernels.training import Stage, TrainConfig, train

    seen = []
    forward = GeneralDIT.forward

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("condition_video_pose"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GeneralDIT, "forward", spy)
    config = TrainConfig(
        stages=(Stage(resolution=32, frames=17, steps=1, lr=1e-3, batch_size=2),),
        model="tiny-video2world-camera",
        tokenizer=None,
        video2world=True,
        precision="fp32",
    )
    data = _PosedLatents()
    result = train(config, HashTextEncoder(max_length=4), progress=False, datasets=lambda s, d: data)
    assert len(result.losses) == 1 and seen and seen[0].shape == (2, 6, 3, 4, 4)
