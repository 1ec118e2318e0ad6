"""Camera control: the Plücker-ray embeddings that condition NeMo's camera-control Video2World DiT
(``build_dit("cosmos-7b-video2world-camera")``), computed as Cosmos computes them.

The recipe (docs/COSMOS.md Part 2 §4.2; NeMo ``nemo/collections/diffusion/data/camera_ctrl_utils.py``
and ``camera.py`` at 53697ac, Cosmos ``cosmos1/models/diffusion/nemo/inference/camera_ctrl.py``
``create_plucker_embeddings_from_pose_list``), per trajectory of N frames:

1. the translations are divided by the largest distance between two of them
   (``normalize_camera_trajectory_to_unit_sphere``);
2. every pose is made relative to the first: ``compose_pair(invert(P0), Pi)``, which is the matrix
   product ``Pi @ inv(P0)`` with the inverse taken as ``[R^T | -R^T t]`` (``get_relative_pose``);
3. the intrinsics get ``K[2, 2] = 1`` and are scaled to the latent grid: row 0 by ``w * w_resize /
   w_pad`` and row 1 by ``h * h_resize / h_pad``. Cosmos's docstring shows normalized intrinsics, but
   its data preparation and inference pass the raw ``fl_x, fl_y, cx, cy`` of ``transforms.json``, so
   raw pixel values are what its checkpoint saw;
4. at every latent pixel center (j + 0.5, i + 0.5) the camera center c and the unit ray direction r in
   the world, treating each pose as world-to-camera (``get_center_and_ray``), give the Plücker
   coordinates ``[c x r, r]``: moment first, then direction (``plucker_coordinates``);
5. the result is multiplied by ``1 - padding_mask`` at latent resolution (nearest resize).

Everything runs in float32, as Cosmos asserts. One departure: Cosmos divides by a zero distance when
the camera never moves (NaN); here such translations are left as they are.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cosmos_kernels.checks import check_int, check_number, check_tensor

Tensor = torch.Tensor
PLUCKER_CHANNELS = 6
_OP = "plucker_embeddings"


def _normalize_translations(poses: Tensor) -> Tensor:
    translations = poses[..., :3, 3]
    distance = torch.cdist(translations.double(), translations.double()).amax(dim=(-2, -1))
    scale = torch.where(distance > 0, distance, torch.ones_like(distance)).float()
    out = poses.clone()
    out[..., :3, 3] = translations / scale[..., None, None]
    return out


def _invert(pose: Tensor) -> Tensor:
    """[R | t] (..., 3, 4) -> [R^T | -R^T t], NeMo's ``Pose.invert`` (a rigid transform's inverse)."""
    rotation_t = pose[..., :3].transpose(-1, -2)
    return torch.cat([rotation_t, -rotation_t @ pose[..., 3:]], dim=-1)


def _compose(first: Tensor, then: Tensor) -> Tensor:
    """NeMo's ``Pose.compose_pair(first, then)``: the pose applying ``first``, then ``then``."""
    rotation = then[..., :3] @ first[..., :3]
    return torch.cat([rotation, then[..., :3] @ first[..., 3:] + then[..., 3:]], dim=-1)


def _center_and_ray(pose: Tensor, intrinsics: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Camera centers and (unnormalized) pixel rays in the world, (..., h*w, 3) each, of world-to-camera
    ``pose`` (..., 3, 4) and ``intrinsics`` (..., 3, 3) at pixel centers, row-major."""
    ys = torch.arange(height, dtype=torch.float32, device=pose.device) + 0.5
    xs = torch.arange(width, dtype=torch.float32, device=pose.device) + 0.5
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    pixels = torch.stack([x, y, torch.ones_like(x)], dim=-1).view(-1, 3)
    in_camera = pixels @ torch.linalg.inv(intrinsics).transpose(-1, -2)
    to_world = _invert(pose)

    def cam2world(points: Tensor) -> Tensor:
        homogeneous = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)
        return homogeneous @ to_world.transpose(-1, -2)

    center = cam2world(torch.zeros_like(in_camera))
    return center, cam2world(in_camera) - center


def _check_padding_mask(padding_mask: object, batch: int | None) -> Tensor:
    mask = check_tensor(_OP, "padding_mask", padding_mask, (2, 3, 4))
    if mask.ndim == 4 and (mask.shape[1] != 1 or mask.shape[0] not in (1, batch or 1)):
        raise ValueError(
            f"{_OP}: padding_mask must be (H, W), (1, H, W) or (B={batch or 1}, 1, H, W) pixels, "
            f"got {tuple(mask.shape)}"
        )
    if mask.ndim == 3 and mask.shape[0] != 1:
        raise ValueError(f"{_OP}: padding_mask (1, H, W) must have one channel, got {tuple(mask.shape)}")
    return mask.reshape(-1, 1, *mask.shape[-2:]).float()


def plucker_embeddings(
    intrinsics: Tensor,
    poses: Tensor,
    latent_size: Sequence[int],
    padding_mask: Tensor | None = None,
    *,
    resize_ratio: Sequence[float] = (1.0, 1.0),
) -> Tensor:
    """Cosmos's camera-control condition for a trajectory (see the module docstring).

    Args:
        intrinsics: (3, 3) for every frame, or one per frame (N, 3, 3) / (B, N, 3, 3): the raw pixel
            intrinsics ``[[fl_x, 0, cx], [0, fl_y, cy], [0, 0, 1]]`` of the video before it is resized.
        poses: (N, 4, 4) or (B, N, 4, 4) per-frame poses, as Cosmos reads ``transform_matrix`` from a
            ``transforms.json`` (the first N frames of the video).
        latent_size: (h, w) of the latent grid (the video's padded size over the tokenizer's 8).
        padding_mask: 1 on padded pixels, (H, W), (1, H, W) or (B, 1, H, W) at pixel (or latent)
            resolution; None: no padding.
        resize_ratio: (h_resize / h_pad, w_resize / w_pad), Cosmos's ``image_size`` ratios when the
            video was resized then padded to the model's size; (1, 1) when it was not padded.

    Returns:
        (B, 6, N, h, w), or (6, N, h, w) for unbatched poses: the DiT's ``condition_video_pose``
        (moment c x r in channels 0-2, direction r in 3-5), float32.
    """
    poses = check_tensor(_OP, "poses", poses, (3, 4))
    if poses.shape[-2:] != (4, 4):
        raise ValueError(
            f"{_OP}: poses must be (N, 4, 4) or (B, N, 4, 4) camera matrices, one per frame, got "
            f"{tuple(poses.shape)}"
        )
    frames_shape = poses.shape[:-2]
    intrinsics = check_tensor(_OP, "intrinsics", intrinsics, (2, 3, 4))
    if intrinsics.shape[-2:] != (3, 3):
        raise ValueError(f"{_OP}: intrinsics must be 3x3 matrices, got {tuple(intrinsics.shape)}")
    if intrinsics.ndim > 2 and intrinsics.shape[:-2] != frames_shape:
        raise ValueError(
            f"{_OP}: intrinsics must be (3, 3) or one per frame {(*frames_shape, 3, 3)} like poses "
            f"{tuple(poses.shape)}, got {tuple(intrinsics.shape)}"
        )
    if not isinstance(latent_size, Sequence) or len(latent_size) != 2:
        raise TypeError(f"{_OP}: latent_size must be (h, w), got {latent_size!r}")
    height, width = latent_size
    check_int(_OP, "latent_size[0]", height, 1)
    check_int(_OP, "latent_size[1]", width, 1)
    if not isinstance(resize_ratio, Sequence) or len(resize_ratio) != 2:
        raise TypeError(
            f"{_OP}: resize_ratio must be (h_resize / h_pad, w_resize / w_pad), got {resize_ratio!r}"
        )
    ratio_h, ratio_w = resize_ratio
    check_number(_OP, "resize_ratio[0]", ratio_h, positive=True)
    check_number(_OP, "resize_ratio[1]", ratio_w, positive=True)
    batched = poses.ndim == 4
    mask = (
        None
        if padding_mask is None
        else _check_padding_mask(padding_mask, poses.shape[0] if batched else None)
    )
    if not batched and mask is not None and mask.shape[0] != 1:
        raise ValueError(f"{_OP}: unbatched poses take one padding_mask, got {tuple(padding_mask.shape)}")

    relative = _normalize_translations(poses.float())[..., :3, :]
    relative = _compose(_invert(relative[..., :1, :, :]), relative)
    k = intrinsics.float().expand(*frames_shape, 3, 3).clone()
    k[..., 2, 2] = 1
    k[..., 0, :] *= width * float(ratio_w)
    k[..., 1, :] *= height * float(ratio_h)
    center, ray = _center_and_ray(relative, k, height, width)
    ray = ray / ray.norm(dim=-1, keepdim=True)
    plucker = torch.cat([torch.linalg.cross(center, ray, dim=-1), ray], dim=-1)  # (..., N, h*w, 6)
    plucker = plucker.view(-1, frames_shape[-1], height, width, PLUCKER_CHANNELS).permute(0, 4, 1, 2, 3)
    if mask is not None:
        latent_mask = F.interpolate(mask.to(plucker.device), size=(height, width), mode="nearest")
        plucker = plucker * (1 - latent_mask[:, :, None])
    return plucker if batched else plucker[0]
