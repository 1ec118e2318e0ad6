"""Camera trajectories for camera-control Video2World: read one from a JSON file and turn it into the
network's condition (``models.plucker_embeddings``).

The file is what Cosmos's camera-control inference reads (``--camera_extrinsics_path``, a DL3DV
``transforms.json``; cosmos1/models/diffusion/nemo/inference/camera_ctrl.py): ``fl_x``, ``fl_y``,
``cx``, ``cy`` (raw pixel intrinsics) and ``frames``, a list with one ``transform_matrix`` (4x4) per
video frame, of which the first ``num_frames`` are used.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from cosmos_kernels.checks import check_int
from cosmos_kernels.models import plucker_embeddings

Tensor = torch.Tensor
_OP = "read_camera_trajectory"


def read_camera_trajectory(path: str | Path, num_frames: int) -> tuple[Tensor, Tensor]:
    """(intrinsics (3, 3), poses (num_frames, 4, 4)), float64, from a transforms.json-style file; clear
    errors when a field is missing, a matrix is not 4x4 or the file has fewer than ``num_frames``."""
    check_int(_OP, "num_frames", num_frames, 1)
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{_OP}: {path} must hold a JSON object with fl_x, fl_y, cx, cy and frames")
    missing = [key for key in ("fl_x", "fl_y", "cx", "cy", "frames") if key not in data]
    if missing:
        raise ValueError(f"{_OP}: {path} lacks {', '.join(missing)} (fl_x, fl_y, cx, cy and frames)")
    frames = data["frames"]
    if not isinstance(frames, list) or len(frames) < num_frames:
        count = len(frames) if isinstance(frames, list) else type(frames).__name__
        raise ValueError(
            f"{_OP}: {path} has {count} frames, the video has {num_frames}: frames needs one "
            "transform_matrix per video frame"
        )
    poses = []
    for i, frame in enumerate(frames[:num_frames]):
        matrix = frame.get("transform_matrix") if isinstance(frame, dict) else None
        if not _is_matrix(matrix, 4, 4):
            raise ValueError(f"{_OP}: {path}: frames[{i}].transform_matrix must be a 4x4 list of numbers")
        poses.append(matrix)
    k = [[data["fl_x"], 0.0, data["cx"]], [0.0, data["fl_y"], data["cy"]], [0.0, 0.0, 1.0]]
    if not _is_matrix(k, 3, 3):
        raise ValueError(f"{_OP}: {path}: fl_x, fl_y, cx and cy must be numbers")
    return torch.tensor(k, dtype=torch.float64), torch.tensor(poses, dtype=torch.float64)


def camera_condition(path: str | Path, num_frames: int, latent_size: Sequence[int], batch: int = 1) -> Tensor:
    """The (batch, 6, num_frames, h, w) Plücker embeddings of the trajectory file for a video of
    ``num_frames`` frames (not resized or padded) on an h x w latent grid: ``Video2WorldPipeline``'s
    ``camera``."""
    intrinsics, poses = read_camera_trajectory(path, num_frames)
    check_int("camera_condition", "batch", batch, 1)
    return plucker_embeddings(intrinsics, poses, latent_size)[None].expand(batch, -1, -1, -1, -1)


def _is_matrix(value: object, rows: int, columns: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == rows
        and all(isinstance(row, list) and len(row) == columns for row in value)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for row in value for x in row)
    )
