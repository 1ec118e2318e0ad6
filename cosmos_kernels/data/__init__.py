"""Training data for the tokenizer and the DiT: synthetic physics videos with captions
(:mod:`~cosmos_kernels.data.physics`), the user's own videos and images from a folder
(:mod:`~cosmos_kernels.data.folder`), and Cosmos-style aspect-ratio buckets with reflect padding and a
batch sampler that batches one bucket at a time (:mod:`~cosmos_kernels.data.buckets`).

Every dataset yields dicts with "video" (3, T, H, W) float32 in [-1, 1], "caption" (str),
"padding_mask" (1, H, W) (1 on padded pixels), "image_size" [H, W, content H, content W] and "fps",
and has ``bucket_key(index)``; ``DataLoader(dataset, batch_sampler=BucketBatchSampler(dataset, batch),
collate_fn=collate)`` gives batches of (B, 3, T, H, W) videos.
"""

from cosmos_kernels.data.buckets import (
    ASPECT_RATIOS,
    BucketBatchSampler,
    bucket_sizes,
    collate,
    nearest_bucket,
    resize_and_pad,
)
from cosmos_kernels.data.folder import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoFolderDataset, load_captions
from cosmos_kernels.data.physics import (
    PALETTE,
    CameraPan,
    PhysicsConfig,
    PhysicsScene,
    PhysicsVideoDataset,
    caption,
    detect_balls,
    panning_clip,
    physics_batch,
    physics_clip,
    render,
    simulate,
)

__all__ = [
    "ASPECT_RATIOS",
    "IMAGE_EXTENSIONS",
    "PALETTE",
    "VIDEO_EXTENSIONS",
    "BucketBatchSampler",
    "CameraPan",
    "PhysicsConfig",
    "PhysicsScene",
    "PhysicsVideoDataset",
    "VideoFolderDataset",
    "bucket_sizes",
    "caption",
    "collate",
    "detect_balls",
    "load_captions",
    "nearest_bucket",
    "panning_clip",
    "physics_batch",
    "physics_clip",
    "render",
    "resize_and_pad",
    "simulate",
]
