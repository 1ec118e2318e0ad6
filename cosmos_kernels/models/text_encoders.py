"""Text conditioning: prompts -> (B, L, 1024) embeddings + (B, L) mask, as Cosmos's T5-XXL gives them.

``TextEncoder`` is the interface the pipelines take. ``T5TextEncoder`` wraps `transformers`' T5 encoder
loaded from a local directory (never downloaded at run time); ``HashTextEncoder`` is a deterministic,
weightless stand-in with the same output contract, for tests and for the tiny models trained here.
Both pad to 512 tokens with zero embeddings, as Cosmos's pipeline zeroes T5's output past each
prompt's length.
"""

import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

Tensor = torch.Tensor
MAX_TOKENS = 512
T5_WIDTH = 1024


class TextEncoder(Protocol):
    """Prompts -> (embeddings (B, max_length, width) float32, mask (B, max_length) bool)."""

    width: int

    def __call__(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]: ...


def _check_prompts(prompts: object) -> list[str]:
    if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
        raise TypeError("prompts must be a non-empty list of strings")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompts[{i}] must be a string, got {type(prompt).__name__}")
    return list(prompts)


class HashTextEncoder:
    """A deterministic stand-in for T5: each lower-cased word maps to a fixed random unit vector
    (seeded by its CRC32), so that equal words embed equally in every process and on every machine.
    Word order is kept only as token position; cross-attention is order-agnostic, as with T5 features.
    """

    def __init__(self, width: int = T5_WIDTH, max_length: int = MAX_TOKENS) -> None:
        if width < 1 or max_length < 1:
            raise ValueError(f"width and max_length must be positive, got {width} and {max_length}")
        self.width, self.max_length = width, max_length

    def _word(self, word: str) -> Tensor:
        gen = torch.Generator().manual_seed(zlib.crc32(word.encode()))
        vector = torch.randn(self.width, generator=gen)
        return vector / vector.norm()

    def __call__(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        prompts = _check_prompts(prompts)
        emb = torch.zeros(len(prompts), self.max_length, self.width)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for i, prompt in enumerate(prompts):
            words = re.findall(r"[a-z0-9]+", prompt.lower())[: self.max_length]
            for j, word in enumerate(words):
                emb[i, j] = self._word(word)
            mask[i, : len(words)] = True
        return emb, mask


class T5TextEncoder:
    """T5-XXL (or any T5 encoder) from a local directory with `transformers`, as Cosmos encodes text:
    512 tokens, embeddings past each prompt's length set to zero. Raises if `transformers` is not
    installed or the directory does not hold the model: nothing is downloaded."""

    def __init__(
        self,
        path: str | Path,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        max_length: int = MAX_TOKENS,
    ) -> None:
        try:
            from transformers import AutoTokenizer, T5EncoderModel
        except ImportError as e:
            raise ImportError("T5TextEncoder needs `transformers` (pip install transformers)") from e
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"T5TextEncoder: {path} is not a directory holding a T5 encoder")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = T5EncoderModel.from_pretrained(path, local_files_only=True, torch_dtype=dtype)
        self.model.to(device).eval()
        self.device, self.max_length = torch.device(device), max_length
        self.width = self.model.config.d_model

    @torch.no_grad()
    def __call__(self, prompts: Sequence[str]) -> tuple[Tensor, Tensor]:
        prompts = _check_prompts(prompts)
        batch = self.tokenizer(
            prompts,
            max_length=self.max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).to(self.device)
        emb = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).last_hidden_state
        mask = batch.attention_mask.bool()
        return emb.float().masked_fill(~mask[..., None], 0.0), mask
