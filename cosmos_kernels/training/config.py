"""Training configuration as small frozen dataclasses: a :class:`TrainConfig` holding a list of
progressive :class:`Stage` s and a :class:`DataConfig`.

Cosmos trains progressively: short, low-resolution clips first, then longer and larger ones, each
stage starting from the previous stage's weights. A stage fixes the resolution (short side in pixels;
the aspect-ratio buckets are sized from it), the frame count of its videos, its steps, learning-rate
schedule and batch size, and the share of its batches that are images (joint image/video training:
an image is a 1-frame video). ``TrainConfig.from_dict`` reads the dict a JSON or YAML file gives and
names any missing or unknown field.
"""

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosmos_kernels.checks import check_int, check_number
from cosmos_kernels.data.buckets import ASPECT_RATIOS
from cosmos_kernels.models.dit import DiTConfig, dit_config
from cosmos_kernels.models.tokenizer import TokenizerConfig, tokenizer_config

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("bf16", "fp32")
DOMAINS = ("video", "image")


@dataclass(frozen=True)
class Stage:
    """One stage of progressive training.

    resolution: short side of the buckets in pixels, a multiple of 16 (``data.bucket_sizes``).
    frames: frames of each video sample, 1 + 8k for the 8x temporal tokenizer (9, 17, 33, ...).
    steps: optimizer steps of this stage. lr: peak learning rate. batch_size: video samples per batch
    (per data-parallel rank); image_batch_size: samples per image batch (default batch_size; Cosmos
    uses larger image batches, which cost less). image_ratio: the share of batches that are image
    batches, spread evenly (0.25: every 4th batch). aspect_ratios: bucket names ("1,1", "16,9", ...).
    warmup_steps: linear warmup from 0; then ``schedule`` ("cosine", "linear" or "constant") decays
    to ``min_lr_ratio * lr`` at the last step.
    """

    resolution: int
    frames: int
    steps: int
    lr: float
    batch_size: int
    image_batch_size: int | None = None
    image_ratio: float = 0.0
    aspect_ratios: tuple[str, ...] = ("1,1",)
    warmup_steps: int = 0
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        owner = "Stage"
        check_int(owner, "resolution", self.resolution, 16)
        if self.resolution % 16:
            raise ValueError(f"{owner}: resolution must be a multiple of 16, got {self.resolution}")
        check_int(owner, "frames", self.frames, 1)
        check_int(owner, "steps", self.steps, 1)
        check_number(owner, "lr", self.lr, minimum=0.0)
        if self.lr == 0:
            raise ValueError(f"{owner}: lr must be positive, got {self.lr}")
        check_int(owner, "batch_size", self.batch_size, 1)
        if self.image_batch_size is not None:
            check_int(owner, "image_batch_size", self.image_batch_size, 1)
        check_number(owner, "image_ratio", self.image_ratio, minimum=0.0, maximum=1.0)
        if self.image_ratio < 1 and self.frames == 1:
            raise ValueError(f"{owner}: frames must be > 1 for video batches (image_ratio < 1), got 1")
        if (
            isinstance(self.aspect_ratios, str)
            or not self.aspect_ratios
            or any(r not in ASPECT_RATIOS for r in self.aspect_ratios)
        ):
            raise ValueError(
                f"{owner}: aspect_ratios must be a non-empty list of {list(ASPECT_RATIOS)}, "
                f"got {self.aspect_ratios!r}"
            )
        check_int(owner, "warmup_steps", self.warmup_steps, 0)
        if self.schedule not in SCHEDULES:
            raise ValueError(f"{owner}: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        check_number(owner, "min_lr_ratio", self.min_lr_ratio, minimum=0.0, maximum=1.0)

    def batch_size_for(self, domain: str) -> int:
        """Samples per batch of ``domain`` ("video" or "image")."""
        if domain == "image" and self.image_batch_size is not None:
            return self.image_batch_size
        return self.batch_size


@dataclass(frozen=True)
class DataConfig:
    """Where samples come from: ``source`` "physics" (synthetic bouncing balls with captions,
    ``data.PhysicsVideoDataset``, ``length`` samples per domain and stage) or a folder of videos and
    images with captions (``data.VideoFolderDataset``: its video files feed video batches, its image
    files image batches). ``num_workers``: DataLoader worker processes (0: load in the training
    process)."""

    source: str = "physics"
    length: int = 1024
    num_workers: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"DataConfig: source must be 'physics' or a folder path, got {self.source!r}")
        check_int("DataConfig", "length", self.length, 1)
        check_int("DataConfig", "num_workers", self.num_workers, 0)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the text encoder.

    Model: ``model`` names a ``models.DIT_CONFIGS`` entry, ``model_overrides`` replaces some of its
    fields (``{"num_blocks": 4}``). Latents: ``tokenizer`` names a ``models.TOKENIZER_CONFIGS`` entry,
    run frozen under no_grad, with weights from ``tokenizer_checkpoint`` (a safetensors file of
    Cosmos's key names; randomly initialized from ``seed`` without one), or None when the data yields
    precomputed tokenizer latents under "latent". ``latent_stats`` maps a domain ("video", "image") to a
    ``mean_std.pt`` file for ``diffusion.normalize_domain_latents``; a domain without one is scaled by
    sigma_data alone.

    Optimization: AdamW (``betas``, ``eps``, ``weight_decay``; the uncertainty net has no weight decay) on
    float32 master weights, ``precision`` "bf16" runs the network under bfloat16 autocast (the loss stays
    float32), gradients clipped to ``grad_clip`` in total norm (None: no clipping), ``ema_decay`` for the
    EMA of the network's weights. EDM: ln sigma ~ N(``p_mean``, ``p_std``^2), times sqrt(latent frames)
    for videos when ``adjust_video_noise``; ``uncertainty`` trains Cosmos's uncertainty net u(sigma)
    jointly (loss = L e^-u + u). ``text_dropout``: the share of samples whose text embedding is zeroed
    (Cosmos's TextConfig.dropout_rate 0.2), which teaches the network the unconditional branch that
    classifier-free guidance samples with; ``token_dropout`` likewise sets the diffusion decoder's token
    indices (a batch's "token_indices") to 0 (Cosmos's latent_condition dropout 0.2). ``video2world``
    trains a Video2World model on video batches with ``diffusion.video2world_training_condition``
    (``min/max_condition_frames``, ``condition_dropout``). ``context_parallel``: ranks per
    context-parallel group when run distributed (1: FSDP data parallel only).
    ``log_every``/``checkpoint_every`` count steps (``checkpoint_every`` 0: a checkpoint at the end of
    each stage only). ``init_checkpoint``: a checkpoint directory whose weights (not optimizer) start the
    first stage.
    """

    stages: tuple[Stage, ...]
    model: str = "tiny"
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    tokenizer: str | None = "tiny-cv8x8x8"
    tokenizer_checkpoint: str | None = None
    latent_stats: Mapping[str, str] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    seed: int = 0
    precision: str = "bf16"
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.1
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    p_mean: float = 0.0
    p_std: float = 1.0
    adjust_video_noise: bool = False
    uncertainty: bool = True
    text_dropout: float = 0.2
    token_dropout: float = 0.2
    video2world: bool = False
    min_condition_frames: int = 0
    max_condition_frames: int = 2
    condition_dropout: float = 0.2
    context_parallel: int = 1
    log_every: int = 1
    checkpoint_every: int = 0
    init_checkpoint: str | None = None

    def __post_init__(self) -> None:
        owner = "TrainConfig"
        if not isinstance(self.stages, tuple | list) or not self.stages:
            raise ValueError(f"{owner}: stages must be a non-empty list of Stage, got {self.stages!r}")
        for i, stage in enumerate(self.stages):
            if not isinstance(stage, Stage):
                raise TypeError(f"{owner}: stages[{i}] must be a Stage, got {type(stage).__name__}")
        object.__setattr__(self, "stages", tuple(self.stages))
        if not isinstance(self.data, DataConfig):
            raise TypeError(f"{owner}: data must be a DataConfig, got {type(self.data).__name__}")
        net = self.dit_config()
        if self.tokenizer is not None:
            tokenizer = tokenizer_config(self.tokenizer)
            if not isinstance(tokenizer, TokenizerConfig):
                raise ValueError(
                    f"{owner}: tokenizer {self.tokenizer!r} is discrete (it gives token indices); the "
                    "DiT trains on the latents of a continuous one, e.g. 'cv8x8x8'"
                )
            if tokenizer.latent_channels != net.latent_channels:
                raise ValueError(
                    f"{owner}: tokenizer {self.tokenizer!r} gives {tokenizer.latent_channels} latent "
                    f"channels, model {self.model!r} takes {net.latent_channels}"
                )
        unknown = sorted(set(self.latent_stats) - set(DOMAINS))
        if unknown:
            raise ValueError(f"{owner}: latent_stats keys must be among {DOMAINS}, got {unknown}")
        check_int(owner, "seed", self.seed, 0)
        if self.precision not in PRECISIONS:
            raise ValueError(f"{owner}: precision must be one of {PRECISIONS}, got {self.precision!r}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"{owner}: betas must be two numbers in [0, 1), got {self.betas!r}")
        object.__setattr__(self, "betas", tuple(self.betas))
        check_number(owner, "eps", self.eps, minimum=0.0)
        check_number(owner, "weight_decay", self.weight_decay, minimum=0.0)
        if self.grad_clip is not None:
            check_number(owner, "grad_clip", self.grad_clip, minimum=0.0)
        check_number(owner, "ema_decay", self.ema_decay, minimum=0.0, maximum=1.0)
        check_number(owner, "p_std", self.p_std, minimum=0.0)
        check_number(owner, "p_mean", self.p_mean)
        check_number(owner, "text_dropout", self.text_dropout, minimum=0.0, maximum=1.0)
        check_number(owner, "token_dropout", self.token_dropout, minimum=0.0, maximum=1.0)
        if self.video2world and not net.video_extend:
            raise ValueError(
                f"{owner}: video2world=True needs a Video2World model (e.g. model='tiny-video2world'), "
                f"got model={self.model!r}"
            )
        check_int(owner, "min_condition_frames", self.min_condition_frames, 0)
        check_int(owner, "max_condition_frames", self.max_condition_frames, self.min_condition_frames)
        check_number(owner, "condition_dropout", self.condition_dropout, minimum=0.0, maximum=1.0)
        check_int(owner, "context_parallel", self.context_parallel, 1)
        check_int(owner, "log_every", self.log_every, 1)
        check_int(owner, "checkpoint_every", self.checkpoint_every, 0)

    def dit_config(self) -> DiTConfig:
        """The network's ``models.DiTConfig``: ``model`` with ``model_overrides`` applied."""
        return dit_config(self.model, **dict(self.model_overrides))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict that ``from_dict`` turns back into an equal config."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """A config from a dict as JSON or YAML gives it: ``stages`` a list of dicts, ``data`` a dict.

        Raises ValueError naming a missing required field (``stages[1].lr``) or an unknown one.
        """
        fields = _fields(cls, data, "config")
        fields["stages"] = tuple(_stage(s, f"stages[{i}]") for i, s in enumerate(_list(fields, "stages")))
        if "data" in fields:
            fields["data"] = DataConfig(**_fields(DataConfig, fields["data"], "data"))
        for name in ("model_overrides", "latent_stats"):
            if name in fields and not isinstance(fields[name], Mapping):
                raise ValueError(f"config: {name} must be a mapping, got {type(fields[name]).__name__}")
        if "betas" in fields:
            fields["betas"] = tuple(_list(fields, "betas"))
        return cls(**fields)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """A config from a JSON file, or a YAML file (.yaml/.yml, needs PyYAML)."""
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as e:
                raise ImportError(f"reading {path} needs PyYAML (pip install pyyaml), or use JSON") from e
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        if not isinstance(data, Mapping):
            raise ValueError(f"{path}: expected a mapping of config fields, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{path}: {e}") from e


def _fields(cls: type, data: object, where: str) -> dict[str, Any]:
    """``data``'s entries checked against ``cls``'s fields: unknown and missing required ones raise."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a mapping of fields, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; valid fields: {', '.join(known)}")
    required = [
        name
        for name, f in known.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in data]
    if missing:
        names = ", ".join(f"{where}.{name}" if where != "config" else name for name in missing)
        raise ValueError(f"{where}: missing required field(s) {names}")
    return dict(data)


def _list(fields: Mapping[str, Any], name: str) -> list[Any]:
    value = fields[name]
    if isinstance(value, str | Mapping) or not isinstance(value, list | tuple):
        raise ValueError(f"config: {name} must be a list, got {type(value).__name__}")
    return list(value)


def _stage(data: object, where: str) -> Stage:
    fields = _fields(Stage, data, where)
    if "aspect_ratios" in fields:
        value = fields["aspect_ratios"]
        fields["aspect_ratios"] = (value,) if isinstance(value, str) else tuple(value)
    try:
        return Stage(**fields)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e


def tiny_config(steps: int = 200) -> TrainConfig:
    """A two-stage run of the tiny DiT on synthetic physics clips, minutes on a CPU: 9-frame clips at
    32 px with a quarter of the batches images, then 17-frame clips at 48 px."""
    check_int("tiny_config", "steps", steps, 2)
    first = steps // 2
    return TrainConfig(
        stages=(
            Stage(
                resolution=32,
                frames=9,
                steps=first,
                lr=1e-3,
                batch_size=4,
                image_ratio=0.25,
                warmup_steps=min(10, first // 5),
            ),
            Stage(resolution=48, frames=17, steps=steps - first, lr=5e-4, batch_size=2, image_ratio=0.25),
        ),
        model="tiny",
        tokenizer="tiny-cv8x8x8",
        data=DataConfig(source="physics", length=256),
        weight_decay=0.0,
    )
