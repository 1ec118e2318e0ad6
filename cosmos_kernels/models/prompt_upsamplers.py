"""Cosmos-1.0's prompt upsamplers, run with `transformers` from a local directory (nothing is downloaded).

Text2World (``Cosmos-1.0-Prompt-Upsampler-12B-Text2World``, a Mistral-NeMo-12B fine-tune) rewrites a short
prompt into the long captions the world models were trained on. Video2World (Pixtral-12B) describes the
last frame of the input video instead: as in Cosmos, **the user's own prompt is not used**. The facts, with
their source files, are in docs/COSMOS.md Part 2 section 3 (CP1 = nvidia-cosmos/cosmos-predict1):

- Text2World: one user turn ``Upsample the short caption to a long caption: {prompt}`` in the tokenizer's
  chat template, at most 512 new tokens sampled from softmax(logits / 0.01), the text cleaned by
  ``clean_upsampled_prompt`` (CP1 diffusion/prompt_upsampler/text2world_prompt_upsampler_inference.py).
  Prompts of more than 250 words skip it (CP1 diffusion/inference/text2world.py and
  world_generation_pipeline.py).
- Video2World: the last frame, resized so that its longer side is at most 1024 pixels, in one user turn
  ``[IMG]\\n`` + a fixed instruction; at most 400 new tokens at temperature 0.01 with top-p 0.9; the text
  is not cleaned (video2world_prompt_upsampler_inference.py; the settings from world_generation_pipeline.py).
  The prompt is tokenized as Cosmos's ImageTextTokenizer does (autoregressive/tokenizer/
  image_text_tokenizer.py): the chat template rendered, its ``[IMG]`` expanded to the image's 16-pixel
  patch grid (``[IMG]`` per patch, ``[IMG_BREAK]`` after each row, ``[IMG_END]`` last), no special tokens
  added. transformers' PixtralProcessor expands the same way but needs torchvision; this needs only Pillow.
- The directory is in transformers' format: ``config.json`` (``mistral`` for Text2World; ``llava`` with a
  ``pixtral`` vision tower for Video2World, e.g. mistral-community/pixtral-12b), the weights and the
  tokenizer (and ``preprocessor_config.json`` for Video2World). Cosmos's own ``model.pt`` files need
  converting first.
- With ``offload=True`` (the default) the model is loaded for each call and freed after it, as Cosmos's
  ``--offload_prompt_upsampler``; with ``offload=False`` it stays on the device between calls.
"""

import gc
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cosmos_kernels.checks import check_int
from cosmos_kernels.video_io import from_model

Tensor = torch.Tensor

KINDS = ("text2world", "video2world")
WORD_LIMIT = 250
MAX_IMAGE_SIDE = 1024
IMAGE_PATCH = 16
TEXT2WORLD_TEMPLATE = "Upsample the short caption to a long caption: {prompt}"
VIDEO2WORLD_INSTRUCTION = (
    "Your task is to transform a given prompt into a refined and concise video description, no more than "
    "150 words.\nFocus only on the content, no filler words or descriptions on the style. Never mention "
    "things outside the video."
)
# Cosmos's fallback for a Pixtral tokenizer without a chat template (image_text_tokenizer.py).
PIXTRAL_CHAT_TEMPLATE = (
    '{%- if messages[0]["role"] == "system" %}\n    {%- set system_message = messages[0]["content"] %}\n'
    "    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n"
    "{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, conversation roles must alternate "
    "user/assistant/user/assistant/...') }}\n    {%- endif %}\n"
    '    {%- if message["role"] == "user" %}\n        {%- if loop.last and system_message is defined %}\n'
    '            {{- "[INST]" + system_message + "\n\n" }}\n        {%- else %}\n'
    '            {{- "[INST]" }}\n        {%- endif %}\n        {%- if message["content"] is not string %}\n'
    '            {%- for chunk in message["content"] %}\n                {%- if chunk["type"] == "text" %}\n'
    '                    {{- chunk["content"] }}\n                {%- elif chunk["type"] == "image" %}\n'
    '                    {{- "[IMG]" }}\n                {%- else %}\n'
    '                    {{- raise_exception("Unrecognized content type!") }}\n                {%- endif %}\n'
    '            {%- endfor %}\n        {%- else %}\n            {{- message["content"] }}\n'
    '        {%- endif %}\n        {{- "[/INST]" }}\n    {%- elif message["role"] == "assistant" %}\n'
    '        {{- message["content"] + eos_token}}\n    {%- else %}\n'
    '        {{- raise_exception("Only user and assistant roles are supported, with the exception of an '
    'initial optional system message!") }}\n    {%- endif %}\n{%- endfor %}'
)
# What each kind's directory must hold, for errors that say what was expected.
EXPECTED = {
    "text2world": "a Mistral causal LM in transformers' format (config.json model_type 'mistral'), e.g. "
    "Cosmos-1.0-Prompt-Upsampler-12B-Text2World converted to transformers",
    "video2world": "Pixtral-12B as transformers' LlavaForConditionalGeneration (config.json model_type "
    "'llava' with a 'pixtral' vision_config), e.g. mistral-community/pixtral-12b",
}


@dataclass(frozen=True)
class UpsamplerSampling:
    """How an upsampler samples: at most ``max_new_tokens`` from softmax(logits / ``temperature``),
    restricted to the top-``top_p`` nucleus when set."""

    max_new_tokens: int
    temperature: float
    top_p: float | None


SAMPLING = {
    "text2world": UpsamplerSampling(max_new_tokens=512, temperature=0.01, top_p=None),
    "video2world": UpsamplerSampling(max_new_tokens=400, temperature=0.01, top_p=0.9),
}


def no_upsampling(prompt: str) -> str:
    """The default prompt upsampler: the prompt unchanged."""
    return prompt


def _drop_short_bold_item(match: re.Match[str]) -> str:
    return "" if len(re.findall(r"\w+", match.group(2))) < 10 else match.group(0)


CLEAN_PREFIXES = ("Caption:", "#####", "####", "- ", "* ", ",")


def clean_upsampled_prompt(text: str) -> str:
    """Cosmos's ``clean_text`` of the Text2World upsampler's output, equal to it on every string: line
    breaks to spaces; each ``- **...**`` item of fewer than 10 words dropped; the prefixes "Caption:",
    "#####", "####", "- ", "* ", "," removed in that order where the text starts with them; whitespace
    collapsed; the characters `` -,*:"'“”`` stripped from both ends."""
    if not isinstance(text, str):
        raise TypeError(f"clean_upsampled_prompt: text must be a string, got {type(text).__name__}")
    text = text.replace("\n", " ").replace("\r", " ")
    text = re.sub(r"(- \*\*)(.*?)(\*\*)", _drop_short_bold_item, text)
    for prefix in CLEAN_PREFIXES:
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip()
    return " ".join(text.split()).strip(" -,*:\"'“”")


def resize_to_max_side(image: Any, max_side: int = MAX_IMAGE_SIDE) -> Any:
    """A PIL image shrunk (never enlarged) so that its longer side is at most ``max_side``, as Cosmos's
    ``resize_image``: ratio = max(w, h) / max_side, new size = ceil(w / ratio) x ceil(h / ratio), PIL's
    default filter."""
    width, height = image.size
    ratio = max(width / max_side, height / max_side)
    if ratio > 1:
        image = image.resize((math.ceil(width / ratio), math.ceil(height / ratio)))
    return image


def last_frame_image(video: Tensor) -> Any:
    """The last frame of a (3, T, H, W) video in [-1, 1] as the uint8 PIL image Cosmos reads from the
    input file, resized by ``resize_to_max_side``."""
    from PIL import Image

    frame = from_model(video[None, :, -1:].detach().cpu())[0]
    return resize_to_max_side(Image.fromarray(frame.numpy()))


def _image_tokens(height: int, width: int) -> str:
    rows = ["[IMG]" * (width // IMAGE_PATCH) + "[IMG_BREAK]"] * (height // IMAGE_PATCH)
    return "".join(rows)[: -len("[IMG_BREAK]")] + "[IMG_END]"


def _model_description(config: dict[str, Any]) -> str:
    vision = (config.get("vision_config") or {}).get("model_type")
    found = repr(config.get("model_type"))
    return f"a {found} model with a {vision!r} vision tower" if vision else f"a {found} model"


def _kind_of(config: dict[str, Any]) -> str | None:
    if config.get("model_type") == "mistral":
        return "text2world"
    vision = (config.get("vision_config") or {}).get("model_type")
    if config.get("model_type") == "llava" and vision == "pixtral":
        return "video2world"
    return None


class PromptUpsampler:
    """Cosmos's Text2World or Video2World prompt upsampler; build it with ``from_pretrained``.

    ``upsampler(prompt)`` (Text2World) or ``upsampler(prompt, video)`` (Video2World, ``video`` (3, T, H, W)
    in [-1, 1]) returns the upsampled prompt; ``upsample(prompts, videos)`` does a batch with one load of
    the model. Video2World ignores ``prompt`` entirely, as Cosmos does, and says so through ``notify``;
    Text2World returns prompts of more than 250 words unchanged, and says so too. See the module docstring
    for the templates and sampling settings.
    """

    def __init__(
        self,
        directory: Path,
        kind: str,
        tokenizer: Any,
        image_processor: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        seed: int,
        offload: bool,
        notify: Callable[[str], None],
    ) -> None:
        self.directory, self.kind = directory, kind
        self.tokenizer, self.image_processor = tokenizer, image_processor
        self.device, self.dtype, self.seed, self.offload, self.notify = device, dtype, seed, offload, notify
        self.sampling = SAMPLING[kind]
        self.model: Any = None  # held between calls only with offload=False

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        kind: str = "text2world",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        offload: bool = True,
        notify: Callable[[str], None] = print,
    ) -> "PromptUpsampler":
        """The upsampler of ``kind`` ("text2world" | "video2world") in the local ``directory``.

        Checks the directory and loads its tokenizer (and image processor) now, the weights at the first
        call. ``device``: default cuda when present, else cpu; ``dtype``: default bfloat16 on cuda, else
        float32. ``seed`` seeds every sampling. ``notify`` receives the console messages.
        """
        op = "PromptUpsampler.from_pretrained"
        if kind not in KINDS:
            raise ValueError(f"{op}: kind must be 'text2world' or 'video2world', got {kind!r}")
        check_int(op, "seed", seed, 0)
        try:
            from transformers import AutoImageProcessor, AutoTokenizer
        except ImportError as error:
            raise ImportError(
                f"{op}: the prompt upsamplers need transformers (pip install 'cosmos-kernels[upsampler]')"
            ) from error
        path = Path(directory)
        if not path.is_dir():
            raise FileNotFoundError(
                f"{op}: directory {path} does not exist; expected a local directory holding {EXPECTED[kind]}"
            )
        if not (path / "config.json").is_file():
            raise ValueError(f"{op}: {path} has no config.json; expected {EXPECTED[kind]}")
        config = json.loads((path / "config.json").read_text())
        found = _kind_of(config)
        if found != kind:
            hint = f" (that is a {found} upsampler: pass kind={found!r})" if found else ""
            raise ValueError(
                f"{op}(kind={kind!r}): {path} holds {_model_description(config)}{hint}; "
                f"expected {EXPECTED[kind]}"
            )
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        if kind == "text2world" and tokenizer.chat_template is None:
            raise ValueError(f"{op}: the tokenizer in {path} has no chat template; expected {EXPECTED[kind]}")
        image_processor = None
        if kind == "video2world":
            image_processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        return cls(
            path,
            kind,
            tokenizer,
            image_processor,
            device=device,
            dtype=dtype,
            seed=seed,
            offload=offload,
            notify=notify,
        )

    def __call__(self, prompt: str, video: Tensor | None = None) -> str:
        return self.upsample([prompt], None if video is None else video[None])[0]

    def upsample(self, prompts: Sequence[str], videos: Tensor | None = None) -> list[str]:
        """Each prompt upsampled; ``videos`` (B, 3, T, H, W) in [-1, 1], one per prompt, for Video2World."""
        op = f"PromptUpsampler({self.kind}).upsample"
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError(f"{op}: prompts must be a list of strings")
        prompts = list(prompts)
        if self.kind == "text2world":
            if videos is not None:
                raise ValueError(f"{op}: the Text2World upsampler takes no video")
            todo = [i for i, p in enumerate(prompts) if len(p.split()) <= WORD_LIMIT]
            for i in sorted(set(range(len(prompts))) - set(todo)):
                self.notify(
                    f"Prompt upsampler skipped: the prompt has {len(prompts[i].split())} words, more than "
                    f"{WORD_LIMIT} (as in Cosmos)"
                )
        else:
            if not isinstance(videos, Tensor) or videos.dim() != 5 or videos.shape[1] != 3:
                got = tuple(videos.shape) if isinstance(videos, Tensor) else type(videos).__name__
                raise ValueError(f"{op}: videos must be (B, 3, T, H, W) frames in [-1, 1], got {got}")
            if videos.shape[0] != len(prompts):
                raise ValueError(f"{op}: {len(prompts)} prompt(s) for a batch of {videos.shape[0]} video(s)")
            self.notify(
                "Video2World prompt upsampler: the input prompt is not used (as in Cosmos); Pixtral "
                "describes the last frame of the input video instead"
            )
            todo = list(range(len(prompts)))
        if not todo:
            return prompts
        model = self.model if self.model is not None else self._load()
        try:
            for i in todo:
                image = None if videos is None else last_frame_image(videos[i])
                prompts[i] = self._generate(model, prompts[i], image)
                self.notify(f"Upsampled prompt: {prompts[i]}")
        finally:
            self.model = None if self.offload else model
            del model
            if self.offload:
                gc.collect()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
        return prompts

    def _load(self) -> Any:
        from transformers import AutoModelForCausalLM, LlavaForConditionalGeneration

        cls = AutoModelForCausalLM if self.kind == "text2world" else LlavaForConditionalGeneration
        model = cls.from_pretrained(self.directory, local_files_only=True, dtype=self.dtype)
        return model.to(self.device).eval()

    def _inputs(self, prompt: str, image: Any) -> dict[str, Tensor]:
        """The token ids (and pixels) of Cosmos's one-turn dialog."""
        if self.kind == "text2world":
            content, template, pixels = TEXT2WORLD_TEMPLATE.format(prompt=prompt), None, {}
        else:
            content = "[IMG]\n" + VIDEO2WORLD_INSTRUCTION
            template = self.tokenizer.chat_template or PIXTRAL_CHAT_TEMPLATE
            pixels = dict(self.image_processor([image], patch_size=IMAGE_PATCH, return_tensors="pt"))
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": content}],
            chat_template=template,
            tokenize=False,
            add_generation_prompt=True,
        )
        if pixels:
            height, width = (int(v) for v in pixels["image_sizes"][0])
            text = text.replace("[IMG]", _image_tokens(height, width), 1)
        tokens = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        inputs = {"input_ids": tokens.input_ids, "attention_mask": tokens.attention_mask, **pixels}
        # Pixels in the model's dtype; token ids and image sizes stay integers.
        return {
            name: value.to(self.device, self.dtype if value.is_floating_point() else value.dtype)
            for name, value in inputs.items()
        }

    @torch.no_grad()
    def _generate(self, model: Any, prompt: str, image: Any) -> str:
        from transformers import GenerationConfig

        inputs = self._inputs(prompt, image)
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        # The model's own generation_config.json is replaced whole: Cosmos samples with exactly these.
        model.generation_config = GenerationConfig(
            max_new_tokens=self.sampling.max_new_tokens,
            do_sample=True,
            temperature=self.sampling.temperature,
            top_k=0,
            top_p=1.0 if self.sampling.top_p is None else self.sampling.top_p,
            eos_token_id=eos,
            pad_token_id=eos if pad is None else pad,
        )
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(self.seed)
            out = model.generate(**inputs)
        new = out[0, inputs["input_ids"].shape[1] :].tolist()
        # Cosmos stops before the stop token and decodes without skipping special tokens.
        if eos in new:
            new = new[: new.index(eos)]
        text = self.tokenizer.decode(new, skip_special_tokens=False)
        return clean_upsampled_prompt(text) if self.kind == "text2world" else text
