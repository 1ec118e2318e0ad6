"""Train the DiT as Cosmos-1.0 does: EDM denoising of tokenizer latents with uncertainty weighting.

Each step takes a batch of one domain (video, or image: a 1-frame video; the stage's ``image_ratio``
spreads image batches evenly), encodes its pixels with the frozen tokenizer under no_grad, normalizes
the latents per domain (``diffusion.normalize_domain_latents``), encodes the captions with the text
encoder and minimizes ``diffusion.edm_training_loss`` (ln sigma ~ N(p_mean, p_std^2), loss
L e^-u + u with the uncertainty net trained jointly, Video2World conditions when configured) with
AdamW on float32 master weights, the network running under bfloat16 autocast. Gradients are clipped
in total norm, the learning rate follows the stage's warmup + decay, and an EMA of the network's
weights is kept. Stages run in order, each from the previous one's weights with a fresh optimizer.

Everything random in a step (sigma, noise, Video2World condition) is drawn from a generator seeded by
(seed, step, data rank), and each domain's batches are a fixed function of (seed, stage, batch
index), so a resumed run repeats the uninterrupted run's losses exactly.

Under ``torch.distributed`` (torchrun, or the gloo CPU tests) the same code shards the network with
FSDP2 (``distributed.shard_model``), makes it context parallel over groups of
``config.context_parallel`` ranks, gives each data-parallel rank its own batches and writes
``torch.distributed.checkpoint`` checkpoints.
"""

import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from cosmos_kernels import distributed
from cosmos_kernels.checks import check_optional_int
from cosmos_kernels.data import BucketBatchSampler, PhysicsVideoDataset, VideoFolderDataset, collate
from cosmos_kernels.data.buckets import BucketedDataset
from cosmos_kernels.diffusion import (
    EDMDenoiser,
    EDMLossParts,
    UncertaintyNet,
    VideoCondition,
    edm_training_loss,
    normalize_domain_latents,
    video2world_training_condition,
)
from cosmos_kernels.models import (
    ContinuousTokenizer,
    GeneralDIT,
    build_tokenizer,
    load_cosmos_tokenizer_state_dict,
    load_latent_stats,
    tokenizer_config,
)
from cosmos_kernels.training.checkpoint import (
    checkpoint_name,
    latest_checkpoint,
    load_optimizer_state,
    load_trainer_state,
    load_weights,
    save_checkpoint,
)
from cosmos_kernels.training.config import DOMAINS, Stage, TrainConfig
from cosmos_kernels.training.ema import EMA
from cosmos_kernels.training.logs import JsonlLogger
from cosmos_kernels.training.schedule import LRSchedule, domain_cursor, step_domain

Tensor = torch.Tensor
TextEncoder = Callable[[list[str]], tuple[Tensor, Tensor]]
DatasetFactory = Callable[[Stage, str], BucketedDataset]
LOG_FILE = "train_log.jsonl"
CHECKPOINT_DIR = "checkpoints"


class EDMTrainModule(nn.Module):
    """What Cosmos's checkpoints call ``model``: the network ``net`` and the uncertainty net ``logvar``
    (state-dict keys ``net.*``, ``logvar.*``); its forward is the training loss.

    With ``precision`` "bf16" the network runs under bfloat16 autocast while the EDM arithmetic, the
    uncertainty net and the loss stay float32.
    """

    def __init__(self, net: GeneralDIT, uncertainty: UncertaintyNet | None, precision: str = "bf16") -> None:
        super().__init__()
        self.net = net
        self.logvar = uncertainty
        self.precision = precision

    def _run_net(self, x: Tensor, *args: object, **kwargs: object) -> Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.net(x, *args, **kwargs)

    def forward(
        self,
        x0: Tensor,
        crossattn_emb: Tensor,
        *,
        generator: torch.Generator,
        video_condition: VideoCondition | None = None,
        p_mean: float = 0.0,
        p_std: float = 1.0,
        adjust_video_noise: bool = False,
        **conditions: object,
    ) -> tuple[Tensor, EDMLossParts]:
        """``diffusion.edm_training_loss`` of clean latents ``x0`` (B, C, T, H, W) under text
        ``crossattn_emb`` (B, L, 1024): the scalar float32 loss and its detached parts."""
        return edm_training_loss(
            EDMDenoiser(self._run_net),
            x0,
            crossattn_emb,
            uncertainty=self.logvar,
            p_mean=p_mean,
            p_std=p_std,
            adjust_video_noise=adjust_video_noise,
            video_condition=video_condition,
            generator=generator,
            **conditions,
        )


@dataclass
class TrainResult:
    """What :func:`train` did: ``losses`` of every step it ran (this rank's loss), the logged
    ``records``, the global ``step`` reached, the last ``checkpoint`` written and the ``log_path``
    (both None without an output folder), and the trained ``module`` (``net`` + ``logvar``) and ``ema``.
    """

    losses: list[float]
    records: list[dict[str, Any]]
    step: int
    checkpoint: Path | None
    log_path: Path | None
    module: EDMTrainModule
    ema: EMA


@dataclass(frozen=True)
class _Parallel:
    """How this process takes part: no mesh for a single process; else the FSDP2 mesh, and which data
    shard it trains on (context-parallel ranks of one group share their data)."""

    mesh: DeviceMesh | None
    rank: int = 0
    world: int = 1
    data_rank: int = 0
    data_world: int = 1


def _parallel(config: TrainConfig, device: torch.device) -> _Parallel:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        if config.context_parallel > 1:
            raise ValueError(
                f"context_parallel = {config.context_parallel} needs a distributed run with a multiple of "
                "that many ranks (torchrun), but torch.distributed is not initialized with several ranks"
            )
        return _Parallel(None)
    world, rank, cp = dist.get_world_size(), dist.get_rank(), config.context_parallel
    if world % cp:
        raise ValueError(f"context_parallel = {cp} must divide the world size {world}")
    if cp == 1:
        return _Parallel(init_device_mesh(device.type, (world,)), rank, world, rank, world)
    mesh = init_device_mesh(device.type, (world // cp, cp), mesh_dim_names=("data", "context"))
    return _Parallel(mesh, rank, world, mesh.get_local_rank(0), world // cp)


def _default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _step_generator(seed: int, step: int, data_rank: int) -> torch.Generator:
    """The CPU generator of one step's randomness; equal on the context-parallel ranks of a group."""
    state = np.random.SeedSequence([seed, step, data_rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class _DomainSubset:
    """The samples of a folder dataset whose frame count makes them one domain (1 frame: images)."""

    def __init__(self, dataset: VideoFolderDataset, domain: str) -> None:
        self.dataset = dataset
        self.indices = [
            i for i in range(len(dataset)) if (dataset.bucket_key(i)[1] == 1) == (domain == "image")
        ]
        if not self.indices:
            kind = "image" if domain == "image" else "video"
            raise ValueError(
                f"the data folder {str(dataset.root)!r} has no {kind} files, but the stage asks for "
                f"{domain} batches (image_ratio)"
            )

    def __len__(self) -> int:
        return len(self.indices)

    def bucket_key(self, index: int) -> tuple[str, int]:
        return self.dataset.bucket_key(self.indices[index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.dataset[self.indices[index]]


def default_datasets(config: TrainConfig) -> DatasetFactory:
    """The factory :func:`train` uses without one: (stage, domain) -> the dataset of that domain, from
    ``config.data``: synthetic physics clips ("physics") or the video/image files of a folder."""
    temporal = 8 if config.tokenizer is None else tokenizer_config(config.tokenizer).temporal_compression
    data = config.data
    folders: dict[Stage, VideoFolderDataset] = {}  # probing opens every file: once per stage

    def make(stage: Stage, domain: str) -> BucketedDataset:
        if data.source == "physics":
            frames = 1 if domain == "image" else stage.frames
            seed = config.seed * 1000 + DOMAINS.index(domain)
            return PhysicsVideoDataset(
                data.length, frames, stage.resolution, 0.0, stage.aspect_ratios, seed, None, temporal
            )
        if stage not in folders:
            folders[stage] = VideoFolderDataset(
                data.source, stage.frames, stage.resolution, stage.aspect_ratios, config.seed, temporal
            )
        return _DomainSubset(folders[stage], domain)

    return make


class _Batches(Sampler[list[int]]):
    """Endless batches of ``sampler`` from batch ``start`` on: batch k of this data rank is the
    sampler's batch k * data_world + data_rank, counted across epochs (each epoch reshuffled)."""

    def __init__(self, sampler: BucketBatchSampler, start: int, data_rank: int, data_world: int) -> None:
        self.sampler, self.start, self.data_rank, self.data_world = sampler, start, data_rank, data_world

    def __iter__(self) -> Iterator[list[int]]:
        per_epoch = len(self.sampler)
        epoch, batches = -1, []
        k = self.start
        while True:
            e, i = divmod(k * self.data_world + self.data_rank, per_epoch)
            if e != epoch:
                self.sampler.set_epoch(e)
                epoch, batches = e, list(self.sampler)
            yield batches[i]
            k += 1


def _stream(
    dataset: BucketedDataset, batch_size: int, seed: int, start: int, parallel: _Parallel, workers: int
) -> Iterator[dict[str, Any]]:
    sampler = BucketBatchSampler(dataset, batch_size, shuffle=True, seed=seed, drop_last=True)
    if len(sampler) == 0:
        raise ValueError(
            f"the dataset has {len(dataset)} samples, too few for one batch of {batch_size} in any "
            "bucket (batches hold samples of one aspect-ratio bucket)"
        )
    batches = _Batches(sampler, start, parallel.data_rank, parallel.data_world)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=collate, num_workers=workers)
    return iter(loader)


def _frozen_tokenizer(config: TrainConfig, device: torch.device) -> ContinuousTokenizer | None:
    if config.tokenizer is None:
        return None
    tokenizer = build_tokenizer(config.tokenizer)
    if config.tokenizer_checkpoint is not None:
        load_cosmos_tokenizer_state_dict(tokenizer, safetensors.torch.load_file(config.tokenizer_checkpoint))
    return tokenizer.to(device).eval().requires_grad_(False)


def _latents(
    batch: Mapping[str, Any],
    domain: str,
    tokenizer: ContinuousTokenizer | None,
    stats: Mapping[str, tuple[Tensor, Tensor] | None],
    device: torch.device,
    precision: str,
) -> Tensor:
    """The batch's normalized diffusion latents (B, C, T, h, w) in float32."""
    if "latent" in batch:
        raw = batch["latent"].to(device)
    elif tokenizer is None:
        raise ValueError("config.tokenizer is None, so batches must hold precomputed latents under 'latent'")
    else:
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=precision == "bf16"):
            raw = tokenizer.encode(batch["video"].to(device))
    return normalize_domain_latents(raw.float(), domain, stats)


def _text(
    text_encoder: TextEncoder, captions: Sequence[str], batch: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    emb, mask = text_encoder(list(captions))
    if not isinstance(emb, Tensor) or emb.dim() != 3 or emb.shape[0] != batch:
        raise ValueError(
            f"text_encoder must return embeddings (B={batch}, L, D) and a mask (B, L), got "
            f"{tuple(emb.shape) if isinstance(emb, Tensor) else type(emb).__name__}"
        )
    if not isinstance(mask, Tensor) or mask.shape != emb.shape[:2]:
        raise ValueError(f"text_encoder's mask must be (B, L) = {tuple(emb.shape[:2])}")
    return emb.to(device), mask.to(device)


def _param_names(module: EDMTrainModule) -> list[list[str]]:
    net = [f"net.{n}" for n, _ in module.net.named_parameters()]
    logvar = [] if module.logvar is None else [f"logvar.{n}" for n, _ in module.logvar.named_parameters()]
    return [net, logvar]


def _optimizer(module: EDMTrainModule, config: TrainConfig, stage: Stage) -> torch.optim.AdamW:
    # Two groups: the uncertainty net gets no weight decay (its one Linear is a calibration, not a
    # feature), and FSDP's DTensor and plain parameters never share a foreach kernel call.
    groups = [{"params": list(module.net.parameters()), "weight_decay": config.weight_decay}]
    uncertainty = [] if module.logvar is None else list(module.logvar.parameters())
    groups.append({"params": uncertainty, "weight_decay": 0.0})
    return torch.optim.AdamW(groups, lr=stage.lr, betas=config.betas, eps=config.eps)


def _shard(module: EDMTrainModule, parallel: _Parallel, precision: str) -> None:
    """FSDP2 over the network (per block, context parallel on a 2-D mesh) and, as the root unit that
    drives the forward, backward and state dicts, the whole module, which holds the uncertainty net."""
    param_dtype = torch.bfloat16 if precision == "bf16" else None
    distributed.shard_model(module.net, parallel.mesh, param_dtype=param_dtype, reduce_dtype=torch.float32)
    # The root's own parameters are the uncertainty net's; the default division by every rank averages
    # their gradients over the data ranks, as they are equal on the ranks of a context-parallel group.
    fully_shard(module, mesh=parallel.mesh)


def _batch_loss(
    module: EDMTrainModule,
    batch: Mapping[str, Any],
    domain: str,
    config: TrainConfig,
    tokenizer: ContinuousTokenizer | None,
    stats: Mapping[str, tuple[Tensor, Tensor] | None],
    text_encoder: TextEncoder,
    device: torch.device,
    generator: torch.Generator,
) -> tuple[Tensor, EDMLossParts, int]:
    """The training loss of one batch of ``domain``, its parts, and the batch size."""
    x0 = _latents(batch, domain, tokenizer, stats, device, config.precision)
    emb, mask = _text(text_encoder, batch["caption"], x0.shape[0], device)
    # Per sample, as Cosmos's conditioner drops it; the zero embedding is what the unconditional branch
    # of diffusion.guidance feeds the network. Drawn at every rate so that the rate does not shift the
    # noise that follows.
    keep = torch.rand(emb.shape[0], generator=generator, device=generator.device) >= config.text_dropout
    emb = emb * keep.to(emb.device, emb.dtype).view(-1, 1, 1)
    condition = None
    if config.video2world and domain == "video":
        condition = video2world_training_condition(
            x0,
            max_condition_frames=config.max_condition_frames,
            min_condition_frames=config.min_condition_frames,
            condition_dropout=config.condition_dropout,
            generator=generator,
        )
    conditions = {}
    if "token_indices" in batch:
        # The diffusion decoder's discrete tokens, dropped per sample to index 0 as Cosmos's conditioner
        # drops its latent_condition: the unconditional branch guidance samples with.
        tokens = batch["token_indices"].to(device)
        keep = torch.rand(tokens.shape[0], generator=generator, device=generator.device)
        conditions["token_indices"] = tokens * (keep >= config.token_dropout).to(tokens).view(-1, 1, 1, 1)
    # The RoPE tables are shared by a batch, so it takes its first sample's frame rate.
    fps = float(batch["fps"][0]) if "fps" in batch else None
    padding = batch["padding_mask"].to(device) if "padding_mask" in batch else None
    # Batch keys the network takes as they are: an action-conditioned network's (B, n, 7) actions
    # (models.dit_action), a camera-control network's Plücker embeddings (models.camera).
    for key in ("action", "condition_video_pose"):
        if key in batch:
            conditions[key] = batch[key].to(device)
    loss, parts = module(
        x0,
        emb,
        generator=generator,
        video_condition=condition,
        p_mean=config.p_mean,
        p_std=config.p_std,
        adjust_video_noise=config.adjust_video_noise,
        fps=fps,
        padding_mask=padding,
        crossattn_mask=mask,
        **conditions,
    )
    return loss, parts, x0.shape[0]


def _optimizer_step(
    module: EDMTrainModule,
    loss: Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: EMA,
    grad_clip: float | None,
) -> float:
    """Backward, clip, step the optimizer, the schedule and the EMA; the gradient norm before clipping."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    max_norm = math.inf if grad_clip is None else grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
    optimizer.step()
    scheduler.step()
    ema.update(module.net)
    full = getattr(grad_norm, "full_tensor", None)  # a DTensor under FSDP2
    return float(full() if callable(full) else grad_norm)


def _mean_over_ranks(values: Tensor, parallel: _Parallel) -> Tensor:
    if parallel.mesh is not None:
        dist.all_reduce(values)
        values = values / parallel.world
    return values


def train(
    config: TrainConfig,
    text_encoder: TextEncoder,
    *,
    output_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    datasets: DatasetFactory | None = None,
    device: torch.device | str | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Run ``config``'s stages (or the rest of them, when resuming) and return a :class:`TrainResult`.

    Args:
        config: the run (see :class:`TrainConfig`).
        text_encoder: captions -> (embeddings (B, L, 1024), mask (B, L)), e.g.
            ``pipelines.HashTextEncoder()`` or ``pipelines.T5TextEncoder(path)``.
        output_dir: where ``train_log.jsonl`` and ``checkpoints/step_*`` go; None keeps nothing on disk.
        resume: a checkpoint directory to continue from, or "latest" for the newest one under
            ``output_dir/checkpoints`` (starting fresh when there is none). A checkpoint taken at the
            end of a stage starts the next stage from its weights with a fresh optimizer.
        datasets: (stage, domain) -> a bucketed dataset of that domain's samples (dicts with "video"
            (3, T, H, W) or precomputed "latent" (C, T, h, w), "caption", "fps", "padding_mask", and
            "action" (n, 7) for an action-conditioned network); by
            default :func:`default_datasets`.
        device: default: this rank's GPU when CUDA is available, else the CPU.
        stop_after: run at most this many steps in this call, then checkpoint (when ``output_dir`` is
            given) and return; the run resumes from there.
        progress: show a progress bar (rank 0) with the loss and samples/s.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not callable(text_encoder):
        raise TypeError(f"text_encoder must be callable (captions -> (emb, mask)), got {text_encoder!r}")
    check_optional_int("train", "stop_after", stop_after, 0)
    device = _default_device() if device is None else torch.device(device)
    parallel = _parallel(config, device)
    out = None if output_dir is None else Path(output_dir)
    if resume is not None and str(resume) == "latest":
        if out is None:
            raise ValueError("resume='latest' needs output_dir")
        resume = latest_checkpoint(out / CHECKPOINT_DIR)

    # Every rank builds the same initial weights from the seed (FSDP then keeps each rank's shard).
    torch.manual_seed(config.seed)
    net = config.dit_config().build()
    uncertainty = (
        UncertaintyNet(generator=torch.Generator().manual_seed(config.seed)) if config.uncertainty else None
    )
    module = EDMTrainModule(net, uncertainty, config.precision).to(device)
    tokenizer = _frozen_tokenizer(config, device)
    stats = {domain: None for domain in DOMAINS}
    stats.update({domain: load_latent_stats(path) for domain, path in config.latent_stats.items()})
    sharded = parallel.mesh is not None
    if sharded:
        _shard(module, parallel, config.precision)
    ema = EMA(module.net, config.ema_decay)
    names = _param_names(module)

    saved: dict[str, Any] | None = None  # the trainer state to continue the first stage from
    first_stage, first_step = 0, 0
    weights_from = None if config.init_checkpoint is None else Path(config.init_checkpoint)
    if resume is not None:
        weights_from = Path(resume)
        saved = load_trainer_state(resume)
        first_stage, first_step = int(saved["stage"]), int(saved["stage_step"])
        if first_stage >= len(config.stages) or first_step > config.stages[first_stage].steps:
            raise ValueError(
                f"{resume}: the checkpoint is at stage {first_stage} step {first_step}, beyond this "
                f"config's stages (steps per stage: {[s.steps for s in config.stages]})"
            )
        torch.set_rng_state(saved["rng"])
        if first_step == config.stages[first_stage].steps:  # a stage's final checkpoint: next stage
            first_stage, first_step, saved = first_stage + 1, 0, None
    if weights_from is not None and not sharded:
        load_weights(weights_from, module, ema)
    make_dataset = default_datasets(config) if datasets is None else datasets

    is_main = parallel.rank == 0
    global_step = sum(s.steps for s in config.stages[:first_stage]) + first_step
    logger = JsonlLogger(out / LOG_FILE, keep_until=global_step) if out is not None and is_main else None
    total_steps = sum(s.steps for s in config.stages)
    bar = tqdm(total=total_steps, initial=global_step, disable=not (progress and is_main), unit="step")
    losses: list[float] = []
    records: list[dict[str, Any]] = []
    last_checkpoint: Path | None = None
    started = time.perf_counter()
    ran = 0

    def checkpoint(
        stage_index: int, stage_step: int, optimizer: torch.optim.Optimizer, scheduler: Any
    ) -> Path:
        state = {
            "step": global_step,
            "stage": stage_index,
            "stage_step": stage_step,
            "scheduler": scheduler.state_dict(),
            "param_names": names,
            "rng": torch.get_rng_state(),
            "config": config.to_dict(),
            "world_size": parallel.world,
        }
        directory = out / CHECKPOINT_DIR / checkpoint_name(global_step)
        return save_checkpoint(directory, module, ema, optimizer, state, sharded=sharded)

    try:
        for stage_index in range(first_stage, len(config.stages)):
            if stop_after is not None and ran >= stop_after:
                break
            stage = config.stages[stage_index]
            optimizer = _optimizer(module, config, stage)
            schedule = LRSchedule(stage.steps, stage.warmup_steps, stage.schedule, stage.min_lr_ratio)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            start = first_step if stage_index == first_stage else 0
            if sharded and weights_from is not None and stage_index == first_stage:
                # DCP loads the optimizer state into the optimizer's own (sharded) state, so it loads here.
                load_weights(weights_from, module, ema, sharded=True, optimizer=optimizer if saved else None)
            if saved is not None:
                if not sharded:
                    load_optimizer_state(optimizer, saved, names, str(resume))
                scheduler.load_state_dict(saved["scheduler"])
                saved = None
            streams = {
                domain: _stream(
                    make_dataset(stage, domain),
                    stage.batch_size_for(domain),
                    config.seed * 1_000 + stage_index * 10 + DOMAINS.index(domain),
                    domain_cursor(start, stage.image_ratio, domain),
                    parallel,
                    config.data.num_workers,
                )
                for domain in DOMAINS
                if (stage.image_ratio > 0 if domain == "image" else stage.image_ratio < 1)
            }
            stage_step = start
            for stage_step in range(start, stage.steps):
                if stop_after is not None and ran >= stop_after:
                    break
                tick = time.perf_counter()
                domain = step_domain(stage_step, stage.image_ratio)
                generator = _step_generator(config.seed, global_step, parallel.data_rank)
                loss, parts, batch_size = _batch_loss(
                    module,
                    next(streams[domain]),
                    domain,
                    config,
                    tokenizer,
                    stats,
                    text_encoder,
                    device,
                    generator,
                )
                lr = optimizer.param_groups[0]["lr"]
                grad_norm = _optimizer_step(module, loss, optimizer, scheduler, ema, config.grad_clip)
                global_step += 1
                ran += 1
                losses.append(loss.item())
                seconds = time.perf_counter() - tick
                samples_per_s = batch_size * parallel.data_world / seconds
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}", samples_per_s=f"{samples_per_s:.1f}")
                if global_step % config.log_every == 0:
                    values = torch.stack(
                        [loss.detach(), parts.edm_loss, parts.mse, parts.logvar.mean()]
                    ).float()
                    loss_mean, edm, mse, logvar = _mean_over_ranks(values.to(device), parallel).tolist()
                    record = {
                        "step": global_step,
                        "stage": stage_index,
                        "domain": domain,
                        "loss": loss_mean,
                        "edm_loss": edm,
                        "mse": mse,
                        "uncertainty": logvar,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "samples_per_s": samples_per_s,
                        "sigma_mean": float(parts.sigma.mean()),
                        "sigma_min": float(parts.sigma.min()),
                        "sigma_max": float(parts.sigma.max()),
                        "time": time.perf_counter() - started,
                    }
                    records.append(record)
                    if logger is not None:
                        logger.log(record)
                if out is not None and config.checkpoint_every and global_step % config.checkpoint_every == 0:
                    last_checkpoint = checkpoint(stage_index, stage_step + 1, optimizer, scheduler)
            else:
                stage_step = stage.steps
            stopped = stage_step < stage.steps
            if out is not None and (
                last_checkpoint is None or last_checkpoint.name != checkpoint_name(global_step)
            ):
                last_checkpoint = checkpoint(stage_index, stage_step, optimizer, scheduler)
            if stopped:
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    return TrainResult(
        losses=losses,
        records=records,
        step=global_step,
        checkpoint=last_checkpoint,
        log_path=None if logger is None else logger.path,
        module=module,
        ema=ema,
    )
