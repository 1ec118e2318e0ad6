"""Train the Cosmos DiT as Cosmos-1.0 does: EDM with uncertainty weighting on tokenizer latents, joint
image/video batches, progressive stages, bf16 autocast over float32 master weights, AdamW with warmup
and decay, gradient clipping, an EMA of the weights, safetensors or sharded (FSDP2) checkpoints that
resume exactly, a JSONL log and its loss-curve PNG.

``train(config, text_encoder)`` is the Python API; ``cosmos-kernels train`` (``cosmos_kernels.tools.train``)
the command line. ``train_tokenizer`` trains a tokenizer (continuous or discrete) on physics clips, in phases.
"""

from cosmos_kernels.training.checkpoint import latest_checkpoint, load_trainer_state, load_weights
from cosmos_kernels.training.config import DataConfig, Stage, TrainConfig, tiny_config
from cosmos_kernels.training.ema import EMA
from cosmos_kernels.training.logs import plot_losses, read_jsonl
from cosmos_kernels.training.schedule import LRSchedule, domain_cursor, step_domain
from cosmos_kernels.training.tokenizer import (
    TokenizerPhase,
    physics_tokenizer_batch,
    pooled_video_target,
    train_tokenizer,
)
from cosmos_kernels.training.trainer import EDMTrainModule, TrainResult, default_datasets, train

__all__ = [
    "EMA",
    "DataConfig",
    "EDMTrainModule",
    "LRSchedule",
    "Stage",
    "TokenizerPhase",
    "TrainConfig",
    "TrainResult",
    "default_datasets",
    "domain_cursor",
    "latest_checkpoint",
    "load_trainer_state",
    "load_weights",
    "physics_tokenizer_batch",
    "plot_losses",
    "pooled_video_target",
    "read_jsonl",
    "step_domain",
    "tiny_config",
    "train",
    "train_tokenizer",
]
