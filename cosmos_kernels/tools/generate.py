"""``cosmos-kernels generate``: a video from a prompt (Text2World) or from given frames (Video2World), with
the shipped tiny world model or a Cosmos checkpoint."""

import argparse
import math
import os
from pathlib import Path

import torch
from rich.console import Console

from cosmos_kernels.diffusion import NUM_STEPS
from cosmos_kernels.models import (
    DIT_CONFIGS,
    ContinuousTokenizer,
    DiscreteTokenizer,
    GeneralDIT,
    MultiviewDiTConfig,
    build_dit,
    load_cosmos_state_dict,
    load_tiny_world,
    tiny_world_dir,
    tiny_world_manifest,
    tiny_world_text_encoder,
)
from cosmos_kernels.reference.attention_8bit import PRECISIONS as ATTENTION_PRECISIONS
from cosmos_kernels.tools.common import (
    DTYPES,
    RANDOM_WEIGHTS_SEED,
    CliError,
    checkpoint_state_dict,
    device_dtype,
    reporting_errors,
    video_tokenizer,
)

# The Text2World / Video2World models whose trained weights ship with the package (models.tiny_world).
SHIPPED_WORLD_MODELS = {"tiny": "text2world", "tiny-video2world": "video2world"}
DEFAULT_MODEL = "tiny"


def _world_model(
    args: argparse.Namespace, console: Console
) -> tuple[GeneralDIT, tuple[ContinuousTokenizer, torch.Tensor, torch.Tensor] | None]:
    """The network, and for the shipped tiny models (no --checkpoint) their tokenizer and latent
    mean and std."""
    if args.model not in DIT_CONFIGS:
        raise CliError(f"unknown world model {args.model!r}; known: {', '.join(DIT_CONFIGS)}")
    if isinstance(DIT_CONFIGS[args.model], MultiviewDiTConfig):
        raise CliError(
            f"{args.model} is a multi-view model: run it with pipelines.MultiviewText2WorldPipeline / "
            "MultiviewVideo2WorldPipeline"
        )
    device, dtype = device_dtype(args)
    if args.checkpoint is None and args.model in SHIPPED_WORLD_MODELS:
        net, tokenizer, mean, std = load_tiny_world(SHIPPED_WORLD_MODELS[args.model], device)
        console.print(
            f"{args.model}: the shipped weights in {tiny_world_dir()} (trained on the synthetic physics "
            "clips by scripts/train_tiny_world_model.py)"
        )
        return net.to(device, dtype).eval(), (tokenizer.to(device, dtype), mean, std)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        net = build_dit(args.model)
    if args.checkpoint is None:
        console.print(
            f"[yellow]No --checkpoint: {args.model} has random weights (seed {RANDOM_WEIGHTS_SEED}), so "
            "the video is noise-like; it tests the pipeline, not the model.[/]"
        )
    else:
        path = Path(args.checkpoint)
        # A Cosmos diffusion checkpoint directory (e.g. Cosmos-1.0-Diffusion-7B-Text2World) holds model.pt.
        load_cosmos_state_dict(
            net, checkpoint_state_dict(path / "model.pt" if path.is_dir() else path, "model")
        )
        console.print(f"{args.model}: weights from {args.checkpoint}")
    return net.to(device, dtype).eval(), None


def _diffusers_world_model(
    args: argparse.Namespace, console: Console
) -> tuple[GeneralDIT, tuple[ContinuousTokenizer, torch.Tensor | None, torch.Tensor | None]]:
    """The network, tokenizer and latent statistics of a diffusers-format Cosmos-1.0 directory."""
    from cosmos_kernels.models import load_diffusers_dir

    options = ("model", "checkpoint", "tokenizer", "tokenizer_checkpoint")
    given = [f"--{name.replace('_', '-')}" for name in options if getattr(args, name) is not None]
    if given:
        raise CliError(
            f"--diffusers-dir {args.diffusers_dir} holds the transformer and the VAE: drop {', '.join(given)}"
        )
    device, dtype = device_dtype(args)
    try:
        world = load_diffusers_dir(args.diffusers_dir, device)
    except (ImportError, OSError, ValueError) as error:
        raise CliError(str(error)) from error
    console.print(
        f"{world.pipeline_class or 'diffusers pipeline'} from {args.diffusers_dir}: its transformer and VAE "
        "on our GeneralDIT and tokenizer"
    )
    tokenizer = world.tokenizer.to(device, dtype).eval()
    return world.net.to(device, dtype).eval(), (tokenizer, world.latent_mean, world.latent_std)


def _generate(args: argparse.Namespace, console: Console) -> int:
    from cosmos_kernels.pipelines import (
        HashTextEncoder,
        PromptUpsampler,
        SamplingOptions,
        T5TextEncoder,
        Text2WorldPipeline,
        Video2WorldPipeline,
        camera_condition,
        no_upsampling,
    )

    if args.prompt is None and args.upsample_prompt is None:
        raise CliError("--prompt is required (a Video2World model with --upsample-prompt does without)")
    _check_writable(args.out, "--out")
    if args.contact_sheet is not None:
        _check_writable(args.contact_sheet, "--contact-sheet")
    if args.diffusers_dir is not None:
        net, bundled = _diffusers_world_model(args, console)
        shipped, name = None, args.diffusers_dir
    else:
        args.model = args.model or DEFAULT_MODEL
        net, shipped = _world_model(args, console)
        bundled, name = shipped, args.model
    net.attention_precision = args.attention_precision
    video2world = net.config.video_extend
    if video2world != (args.input_video is not None):
        raise CliError(
            "Video2World models (*-video2world) take --input-video, Text2World models do not; "
            f"{name} is {'a Video2World' if video2world else 'a Text2World'} model"
        )
    if bool(net.config.pose_channels) != (args.camera is not None):
        raise CliError(
            f"camera-control models (*-camera) take --camera, other models do not; {name} is not one"
        )
    upsampler = no_upsampling
    if args.upsample_prompt is not None:
        if args.prompt is None and not video2world:
            raise CliError(f"--prompt is required: {name} is Text2World, whose upsampler rewrites the prompt")
        upsampler = PromptUpsampler.from_pretrained(
            args.upsample_prompt,
            "video2world" if video2world else "text2world",
            device=device_dtype(args)[0],
            notify=lambda message: console.print(message, markup=False),
        )
    stats = {}
    size, guidance = 64, 7.0
    manifest = tiny_world_manifest() if shipped is not None else None
    if bundled is not None and args.tokenizer is None and args.tokenizer_checkpoint is None:
        tokenizer, mean, std = bundled
        stats = {k: v for k, v in (("latent_mean", mean), ("latent_std", std)) if v is not None}
        if shipped is not None:
            size, guidance = manifest["size"], manifest["guidance"][SHIPPED_WORLD_MODELS[args.model]]
    else:
        tokenizer_name = args.tokenizer or ("tiny-cv8x8x8" if args.model.startswith("tiny") else "cv8x8x8")
        tokenizer = video_tokenizer(tokenizer_name, args.tokenizer_checkpoint, "decoder", args, console)
        if isinstance(tokenizer, DiscreteTokenizer):
            raise CliError(f"--tokenizer {tokenizer_name}: world models decode latents with a continuous one")
    if args.t5 is not None:
        text_encoder = T5TextEncoder(args.t5, device=device_dtype(args)[0])
    elif shipped is not None:
        text_encoder = tiny_world_text_encoder()  # as trained: the hash stand-in, shorter padding
    else:
        console.print("No --t5: prompts are embedded by the deterministic stand-in (HashTextEncoder).")
        text_encoder = HashTextEncoder(width=net.config.crossattn_emb_channels)
    options = SamplingOptions(
        num_steps=args.steps,
        guidance=guidance if args.guidance is None else args.guidance,
        sampler=args.sampler,
        fps=float(args.fps),
    )
    common = {
        "negative_prompt": args.negative_prompt,
        "options": options,
        "seed": args.seed,
        "progress": True,
    }
    if video2world:
        from cosmos_kernels.video_io import read_video, to_model

        frames, _ = read_video(args.input_video)
        if shipped is not None:
            _check_trained_size(args, manifest["size"], frames.shape[1], frames.shape[2], console)
        if frames.shape[0] < args.input_frames:
            raise CliError(
                f"--input-video {args.input_video}: {frames.shape[0]} frames, need {args.input_frames}"
            )
        # Cosmos continues a video from its last frames (inference_utils.get_condition_latent).
        given = to_model(frames[-args.input_frames :])
        pipeline = Video2WorldPipeline(net, text_encoder, tokenizer, prompt_upsampler=upsampler, **stats)
        if args.actions is not None:
            common["actions"] = _read_actions(args.actions)
        if args.camera is not None:
            latent_size = [side // pipeline.spatial_compression for side in given.shape[-2:]]
            common["camera"] = camera_condition(args.camera, args.frames, latent_size)
        result = pipeline(args.prompt or "", given.to(pipeline.device), num_frames=args.frames, **common)
    else:
        if args.actions is not None:
            raise CliError(f"--actions is for action-conditioned Video2World models (*-action), not {name}")
        pipeline = Text2WorldPipeline(net, text_encoder, tokenizer, prompt_upsampler=upsampler, **stats)
        height = size if args.height is None else args.height
        width = size if args.width is None else args.width
        if shipped is not None:
            _check_trained_size(args, manifest["size"], height, width, console)
        result = pipeline(args.prompt, num_frames=args.frames, height=height, width=width, **common)
    return _write_generated(result.video, args, console)


def _read_actions(path: str) -> torch.Tensor:
    """--actions: a .npy or .json array of shape (frames - 1, 7) or (7,), as a batch of one."""
    import json

    import numpy as np

    try:
        values = np.load(path) if path.endswith(".npy") else np.asarray(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as error:
        raise CliError(
            f"--actions {path}: not a readable .npy or .json array of numbers ({error})"
        ) from error
    return torch.as_tensor(values, dtype=torch.float32)[None]


def _write_generated(video: torch.Tensor, args: argparse.Namespace, console: Console) -> int:
    from cosmos_kernels.video_io import from_model

    frames = from_model(video[:1])
    out = Path(args.out)
    if out.suffix == ".npy":
        import numpy as np

        np.save(out, frames.numpy())  # the uint8 frames (T, H, W, 3), no encoding loss
    else:
        from cosmos_kernels.video_io import write_video

        write_video(out, frames, args.fps)
    console.print(f"{tuple(frames.shape[:3])} frames x H x W written to {out}")
    from cosmos_kernels.pipelines.evaluation import write_contact_sheet

    sheet = Path(args.out).with_suffix(".png") if args.contact_sheet is None else Path(args.contact_sheet)
    # Frames enlarged to at least 96 pixels high, so that a 32-pixel video's sheet is readable.
    scale = max(1, math.ceil(96 / video.shape[3]))
    try:
        write_contact_sheet([video[0]], sheet, scale=scale)
    except ImportError as error:
        if args.contact_sheet is not None:
            raise CliError(f"--contact-sheet {args.contact_sheet}: {error}") from error
        console.print(f"[yellow]No contact sheet: {error}[/]")
    else:
        console.print(f"contact sheet of the {video.shape[2]} frames written to {sheet}")
    return 0


def _check_writable(path: str, argument: str) -> None:
    """Refuse an output path whose folder is missing before minutes of sampling, not after."""
    folder = Path(path).resolve().parent
    if not folder.is_dir():
        raise CliError(f"{argument} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"{argument} {path}: the folder {folder} is not writable")


def _check_trained_size(
    args: argparse.Namespace, trained: int, height: int, width: int, console: Console
) -> None:
    """The shipped tiny model only knows the frame size it was trained at; elsewhere it makes noise."""
    if (height, width) == (trained, trained):
        return
    message = (
        f"the shipped {args.model} model was trained on {trained}x{trained} frames only; at {height}x{width} "
        "its output is not a meaningful video"
    )
    if not args.any_size:
        raise CliError(f"{message} (pass --any-size to sample anyway)")
    console.print(f"[yellow]Warning: {message}.[/]")


cmd_generate = reporting_errors(_generate)


def register(sub: argparse._SubParsersAction) -> None:
    generate = sub.add_parser("generate", help="generate a video from a prompt (and given frames)")
    generate.add_argument(
        "--prompt",
        default=None,
        help="what the video shows (required, except for a Video2World model with --upsample-prompt)",
    )
    generate.add_argument(
        "--negative-prompt", default=None, help="steer away from this (replaces the empty prompt)"
    )
    generate.add_argument(
        "--model", default=None, help=f"one of {', '.join(DIT_CONFIGS)} (default: {DEFAULT_MODEL})"
    )
    generate.add_argument(
        "--diffusers-dir",
        default=None,
        metavar="DIR",
        help="a diffusers-format Cosmos-1.0 pipeline directory (model_index.json, transformer/, vae/), "
        "run on our models (needs the diffusers extra)",
    )
    generate.add_argument(
        "--checkpoint",
        default=None,
        metavar="PATH",
        help="Cosmos model.pt or a .safetensors state dict (default for tiny, tiny-video2world: the "
        "shipped weights, with their tokenizer)",
    )
    generate.add_argument(
        "--tokenizer", default=None, help="default: tiny-cv8x8x8 for tiny models, else cv8x8x8"
    )
    generate.add_argument(
        "--tokenizer-checkpoint", default=None, metavar="PATH", help="tokenizer decoder weights"
    )
    generate.add_argument(
        "--t5", default=None, metavar="DIR", help="local T5 encoder directory (transformers)"
    )
    generate.add_argument(
        "--upsample-prompt",
        default=None,
        metavar="DIR",
        help="rewrite the prompt with Cosmos's prompt upsampler in this local transformers directory: "
        "Mistral-NeMo (Text2World; prompts over 250 words are kept) or Pixtral-12B (Video2World: it "
        "describes the input video's last given frame and does not use --prompt)",
    )
    generate.add_argument(
        "--input-video", default=None, help="Video2World: the video whose last frames to continue"
    )
    generate.add_argument(
        "--input-frames",
        type=int,
        choices=(1, 9),
        default=1,
        help="Video2World: how many of the input video's last frames condition the generation",
    )
    generate.add_argument(
        "--actions",
        default=None,
        metavar="FILE",
        help="action-conditioned Video2World (*-action): a .npy or .json array (frames - 1, 7) or (7,) of "
        "actions scaled as the network takes them (models.scale_actions)",
    )
    generate.add_argument(
        "--camera",
        default=None,
        metavar="JSON",
        help="camera-control models: the trajectory, a transforms.json with fl_x, fl_y, cx, cy and a 4x4 "
        "transform_matrix per frame (Cosmos's --camera_extrinsics_path)",
    )
    generate.add_argument("--frames", type=int, default=17, help="frames to generate, 1 + 8k (Cosmos: 121)")
    generate.add_argument(
        "--height",
        type=int,
        default=None,
        help="Text2World height in pixels (default: the shipped tiny model's 32, else 64; Cosmos: 704)",
    )
    generate.add_argument(
        "--width",
        type=int,
        default=None,
        help="Text2World width in pixels (default: the shipped tiny model's 32, else 64; Cosmos: 1280)",
    )
    generate.add_argument("--fps", type=int, default=24)
    generate.add_argument(
        "--steps", type=int, default=NUM_STEPS, help=f"sampling steps (Cosmos: {NUM_STEPS})"
    )
    generate.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="classifier-free guidance (default: the shipped tiny model's, else Cosmos's 7)",
    )
    generate.add_argument("--sampler", choices=("euler", "heun", "multistep"), default="euler")
    generate.add_argument("--seed", type=int, default=1)
    generate.add_argument(
        "--out", default="generated.mp4", help="video file to write (.npy: the uint8 frames (T, H, W, 3))"
    )
    generate.add_argument(
        "--any-size",
        action="store_true",
        help="let the shipped tiny models sample at a frame size other than their training size (32x32)",
    )
    generate.add_argument(
        "--contact-sheet",
        default=None,
        metavar="PATH",
        help="PNG grid of the frames to write (default: --out with .png; needs Pillow)",
    )
    generate.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    generate.add_argument(
        "--dtype", choices=sorted(DTYPES), default=None, help="default bfloat16 (float32 on CPU)"
    )
    generate.add_argument(
        "--attention-precision",
        choices=ATTENTION_PRECISIONS,
        default=None,
        help="8-bit attention (INT8 QK^T, optionally FP8 PV); default: exact",
    )
    generate.set_defaults(func=cmd_generate)
