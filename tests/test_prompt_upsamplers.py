"""Cosmos's prompt upsamplers (models.prompt_upsamplers) on tiny random transformers models built here: the
exact prompt fed to the model, the sampling settings, the last-frame resize, the 250-word skip, the
offloading, ``clean_upsampled_prompt`` against Cosmos's ``clean_text``, the pipelines and ``generate``."""

import copy
import gc
import random
import re
import weakref

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoImageProcessor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    MistralConfig,
    MistralForCausalLM,
    PixtralVisionConfig,
    PreTrainedTokenizerFast,
)

from cosmos_kernels import cli
from cosmos_kernels.models import build_dit, build_tokenizer
from cosmos_kernels.models.prompt_upsamplers import VIDEO2WORLD_INSTRUCTION
from cosmos_kernels.pipelines import (
    HashTextEncoder,
    PromptUpsampler,
    SamplingOptions,
    Text2WorldPipeline,
    Video2WorldPipeline,
    clean_upsampled_prompt,
)


def cosmos_clean_text(text: str) -> str:
    """Cosmos's clean_text, transcribed from cosmos-predict1
    cosmos_predict1/diffusion/prompt_upsampler/text2world_prompt_upsampler_inference.py (the oracle)."""
    text = text.replace("\n", " ").replace("\r", " ")
    pattern = r"(- \*\*)(.*?)(\*\*)"

    def replacement(match: re.Match[str]) -> str:
        content = match.group(2)
        words = re.findall(r"\w+", content)
        if len(words) < 10:
            return ""
        else:
            return match.group(0)

    text = re.sub(pattern, replacement, text)
    prefixes = ["Caption:", "#####", "####", "- ", "* ", ","]
    for prefix in prefixes:
        if text.startswith(prefix):
            text = text[len(prefix) :].lstrip()
    text = " ".join(text.split())
    text = text.strip(' -,*:"\'"“”')  # noqa: B005 (a character set, as in Cosmos)
    return text


# Mistral-Instruct's chat layout: bos, then [INST]user[/INST] turns.
MISTRAL_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "[INST]{{ message['content'] }}[/INST]{% else %}{{ message['content'] }}{{ eos_token }}{% endif %}"
    "{% endfor %}"
)
SPECIALS = ["<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]", "<pad>"]


def tiny_tokenizer(chat_template: str | None) -> PreTrainedTokenizerFast:
    """A byte-level BPE (lossless round trip) trained on a few sentences, with Mistral's special tokens."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = ["Upsample the short caption to a long caption: a red ball bounces", VIDEO2WORLD_INSTRUCTION]
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    fast.chat_template = chat_template
    return fast


def tiny_mistral_config(vocab: int) -> MistralConfig:
    return MistralConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=8,
    )


@pytest.fixture(scope="module")
def text2world_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("text2world")
    tokenizer = tiny_tokenizer(MISTRAL_CHAT_TEMPLATE)
    torch.manual_seed(0)
    MistralForCausalLM(tiny_mistral_config(len(tokenizer))).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video2world_dir(tmp_path_factory):
    """Pixtral as transformers lays it out: Llava with a Pixtral vision tower and a Mistral LM; the
    tokenizer without a chat template, so Cosmos's fallback template renders the turn."""
    from transformers import PixtralImageProcessorPil

    path = tmp_path_factory.mktemp("video2world")
    tokenizer = tiny_tokenizer(None)
    vision = PixtralVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        head_dim=8,
        image_size=64,
        patch_size=16,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=tiny_mistral_config(len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    PixtralImageProcessorPil(size={"longest_edge": 64}, patch_size=16).save_pretrained(path)
    return path


# The tiny models sample this many tokens at most, to keep the tests short; the settings that the
# upsampler gives the model (512 or 400 new tokens) are recorded before the cap is applied.
TEST_MAX_NEW_TOKENS = 12


class GenerateRecorder:
    """Wraps the tiny models' ``generate``: records its inputs, the model's sampling config as the
    upsampler set it, the output and a weak reference to the model; then samples at most
    TEST_MAX_NEW_TOKENS tokens."""

    def __init__(self, monkeypatch):
        self.calls = []
        for model_class in (MistralForCausalLM, LlavaForConditionalGeneration):
            self._wrap(monkeypatch, model_class)

    def _wrap(self, monkeypatch, model_class):
        original = model_class.generate

        def generate(model, **inputs):
            config = copy.deepcopy(model.generation_config)
            out = original(model, **inputs, max_new_tokens=TEST_MAX_NEW_TOKENS)
            self.calls.append({"inputs": inputs, "config": config, "out": out, "model": weakref.ref(model)})
            return out

        monkeypatch.setattr(model_class, "generate", generate)


@pytest.fixture
def recorder(monkeypatch):
    return GenerateRecorder(monkeypatch)


def new_text(tokenizer, call) -> str:
    """What the model generated after the prompt, up to the end token, decoded as Cosmos does."""
    new = call["out"][0, call["inputs"]["input_ids"].shape[1] :].tolist()
    if tokenizer.eos_token_id in new:
        new = new[: new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new, skip_special_tokens=False)


# ---- clean_upsampled_prompt == Cosmos's clean_text ----

PIECES = [
    "- **", "**", "- ", "* ", "*", "-", ",", ":", "Caption:", "Caption", "#####", "####", "###", "#",
    "\n", "\r", "\r\n", " ", "  ", "\t", "\u00a0", "\u2028", "\x0b", "\x1c", "\x85", '"', "'", "“", "”",
    "word", "a", "B", "é", "ß", "日本", "42", "_", "x_y", ".", "!", "(", ")",
]  # fmt: skip


def random_text(rng: random.Random) -> str:
    pieces = rng.choices(PIECES, k=rng.randint(0, 40))
    if rng.random() < 0.3:  # a '- **...**' item of about ten words, on either side of the limit
        words = " ".join(rng.choice(["w", "word", "é", "x_y", "42"]) for _ in range(rng.randint(8, 12)))
        pieces.insert(rng.randint(0, len(pieces)), f"- **{words}**")
    return "".join(pieces)


CLEAN_CASES = [
    "",
    "Caption: A red ball.",
    "\n\r Caption: x",
    "##### - * ,  the scene",
    "- **Scene:** a ball - **one two three four five six seven eight nine ten** rolls",
    '"“A quoted caption.”"',
    "- **a** - **b**",
    "- ** unclosed bold",
    "Caption:Caption: twice",
    ",#####x",
    "#####Caption: order",
]


@pytest.mark.parametrize("text", CLEAN_CASES)
def test_clean_upsampled_prompt_matches_cosmos_on_cases(text):
    assert clean_upsampled_prompt(text) == cosmos_clean_text(text)


def test_clean_upsampled_prompt_matches_cosmos_on_random_strings():
    rng = random.Random(20)
    texts = [random_text(rng) for _ in range(4000)]
    punctuation = " -*,:#\"'“”\n\rCaption"
    texts += ["".join(rng.choices(punctuation, k=rng.randint(0, 30))) for _ in range(2000)]
    texts += ["".join(chr(rng.randint(0, 0x3000)) for _ in range(rng.randint(0, 30))) for _ in range(1000)]
    mismatches = [t for t in texts if clean_upsampled_prompt(t) != cosmos_clean_text(t)]
    assert not mismatches, mismatches[:3]
    changed = sum(clean_upsampled_prompt(t) != t for t in texts)
    assert changed > 3000  # the strings exercise the cleaning, not just pass through
    with pytest.raises(TypeError, match="text must be a string"):
        clean_upsampled_prompt(None)


# ---- Text2World ----


def test_text2world_prompt_sampling_cleaning_and_offload(text2world_dir, recorder):
    messages = []
    upsampler = PromptUpsampler.from_pretrained(text2world_dir, notify=messages.append, seed=3)
    assert upsampler.kind == "text2world"
    assert upsampler.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    out = upsampler("a red ball")
    (call,) = recorder.calls
    tokenizer = upsampler.tokenizer
    expected = "<s>[INST]Upsample the short caption to a long caption: a red ball[/INST]"
    ids = call["inputs"]["input_ids"][0].tolist()
    assert tokenizer.decode(ids, skip_special_tokens=False) == expected
    assert ids == tokenizer(expected, add_special_tokens=False).input_ids and ids.count(1) == 1  # one bos
    config = call["config"]
    assert (config.max_new_tokens, config.do_sample, config.temperature) == (512, True, 0.01)
    assert config.top_k == 0 and config.top_p == 1.0  # pure softmax(logits / 0.01) sampling
    assert out == clean_upsampled_prompt(new_text(tokenizer, call))
    assert messages == [f"Upsampled prompt: {out}"]
    gc.collect()
    assert call["model"]() is None and upsampler.model is None  # offloaded: freed after the call
    assert upsampler("a red ball") == out  # seeded
    assert recorder.calls[1]["model"]() is None


def test_text2world_skips_prompts_over_250_words(text2world_dir, recorder):
    messages = []
    upsampler = PromptUpsampler.from_pretrained(text2world_dir, notify=messages.append)
    long_prompt = " ".join(["ball"] * 251)
    assert upsampler.upsample([long_prompt]) == [long_prompt]
    assert not recorder.calls and "251 words, more than 250" in messages[0]
    at_limit = " ".join(["ball"] * 250)
    out = upsampler.upsample([long_prompt, at_limit])
    assert out[0] == long_prompt and len(recorder.calls) == 1  # one model load for the batch
    assert recorder.calls[0]["inputs"]["input_ids"].shape[1] > 250


def test_text2world_without_offload_keeps_the_model(text2world_dir, recorder):
    upsampler = PromptUpsampler.from_pretrained(text2world_dir, offload=False, notify=lambda _: None)
    upsampler("a ball")
    upsampler("a cube")
    first, second = recorder.calls
    assert first["model"]() is upsampler.model and second["model"]() is upsampler.model


# ---- Video2World ----


def test_video2world_last_frame_template_sampling_and_offload(video2world_dir, recorder, monkeypatch):
    processor_class = type(AutoImageProcessor.from_pretrained(video2world_dir, local_files_only=True))
    images = []
    original_call = processor_class.__call__

    def call_processor(processor, given, *args, **kwargs):
        images.extend(given)
        return original_call(processor, given, *args, **kwargs)

    monkeypatch.setattr(processor_class, "__call__", call_processor)
    messages = []
    upsampler = PromptUpsampler.from_pretrained(video2world_dir, "video2world", notify=messages.append)
    generator = torch.Generator().manual_seed(0)
    video = torch.rand(1, 3, 3, 48, 1100, generator=generator) * 2 - 1
    out = upsampler.upsample(["a red ball"], video)

    # The last frame as uint8, shrunk so that the longer side is 1024: ratio 1100/1024 -> 1024 x ceil(44.7).
    last = ((video[0, :, -1] + 1) / 2 * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    (image,) = images
    assert image.size == (1024, 45)
    assert np.array_equal(np.asarray(image), np.asarray(Image.fromarray(last).resize((1024, 45))))

    (call,) = recorder.calls
    tokenizer = upsampler.tokenizer
    assert call["inputs"]["image_sizes"].tolist() == [[16, 64]]  # the processor's 64-pixel tiny size
    grid = "[IMG]" * 4 + "[IMG_END]"  # one row of four 16-pixel patches
    expected = f"<s>[INST]{grid}\n{VIDEO2WORLD_INSTRUCTION}[/INST]"
    ids = call["inputs"]["input_ids"][0].tolist()
    assert tokenizer.decode(ids, skip_special_tokens=False) == expected
    assert ids == tokenizer(expected, add_special_tokens=False).input_ids
    assert VIDEO2WORLD_INSTRUCTION.startswith("Your task is to transform a given prompt into a refined and")
    assert VIDEO2WORLD_INSTRUCTION.endswith("the style. Never mention things outside the video.")
    config = call["config"]
    assert (config.max_new_tokens, config.do_sample, config.temperature) == (400, True, 0.01)
    assert config.top_p == 0.9 and config.top_k == 0
    assert out == [new_text(tokenizer, call)]  # no cleaning
    assert "the input prompt is not used" in messages[0] and messages[1] == f"Upsampled prompt: {out[0]}"
    gc.collect()
    assert call["model"]() is None and upsampler.model is None

    # The user's prompt is not used: another prompt gives the same model input and the same text.
    assert upsampler("something else entirely", video[0]) == out[0]
    assert torch.equal(recorder.calls[1]["inputs"]["input_ids"], call["inputs"]["input_ids"])
    # A frame within 1024 pixels is not resized.
    upsampler("", video[0, :, :, :40, :50])
    assert images[-1].size == (50, 40)


# ---- pipelines and generate ----


@pytest.fixture(scope="module")
def video_tokenizer():
    torch.manual_seed(0)
    return build_tokenizer("tiny-cv8x8x8").eval()


def test_pipelines_run_the_upsamplers(text2world_dir, video2world_dir, video_tokenizer, recorder):
    quiet = {"notify": lambda _: None}
    text2world = PromptUpsampler.from_pretrained(text2world_dir, **quiet)
    video2world = PromptUpsampler.from_pretrained(video2world_dir, "video2world", **quiet)
    fast = SamplingOptions(num_steps=1)
    torch.manual_seed(1)
    pipe = Text2WorldPipeline(build_dit("tiny"), HashTextEncoder(), prompt_upsampler=text2world)
    result = pipe("a red ball", num_frames=1, height=32, width=32, options=fast)
    assert result.prompts == [text2world("a red ball")]
    net = build_dit("tiny-video2world")
    pipe = Video2WorldPipeline(net, HashTextEncoder(), video_tokenizer, prompt_upsampler=video2world)
    given = torch.rand(1, 3, 1, 32, 32) * 2 - 1
    result = pipe("ignored", given, num_frames=9, options=fast)
    assert result.prompts == [video2world("other", given[0])]
    with pytest.raises(ValueError, match="Video2WorldPipeline takes a video2world prompt upsampler"):
        Video2WorldPipeline(net, HashTextEncoder(), video_tokenizer, prompt_upsampler=text2world)
    with pytest.raises(ValueError, match="Text2WorldPipeline takes a text2world prompt upsampler"):
        Text2WorldPipeline(build_dit("tiny"), HashTextEncoder(), prompt_upsampler=video2world)


def test_cli_generate_upsample_prompt(text2world_dir, video2world_dir, tmp_path, capsys, recorder):
    out = tmp_path / "t2w.npy"
    argv = ["generate", "--prompt", "a red ball", "--steps", "1", "--frames", "9", "--out", str(out)]
    assert cli.main([*argv, "--upsample-prompt", str(text2world_dir)]) == 0
    printed = capsys.readouterr().out
    assert "Upsampled prompt:" in printed
    frames = np.load(out)
    video = tmp_path / "given.mp4"
    from cosmos_kernels.video_io import write_video

    write_video(video, torch.from_numpy(frames), 24)
    # Video2World: no --prompt needed with the upsampler, which says that the prompt is not used.
    argv = ["generate", "--model", "tiny-video2world", "--input-video", str(video), "--steps", "1"]
    argv += ["--frames", "9", "--out", str(tmp_path / "v2w.npy"), "--upsample-prompt", str(video2world_dir)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "input prompt is not used" in printed and "Upsampled prompt:" in printed
    # The wrong kind for the model, and a missing directory: one-line errors before sampling.
    argv = ["generate", "--prompt", "x", "--out", str(tmp_path / "x.npy"), "--upsample-prompt"]
    assert cli.main([*argv, str(video2world_dir)]) == 2
    assert "expected a Mistral causal LM" in capsys.readouterr().err
    assert cli.main([*argv, str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["generate", "--out", str(tmp_path / "x.npy")]) == 2
    assert "--prompt is required" in capsys.readouterr().err


# ---- bad input ----


def test_bad_directories_and_kinds(text2world_dir, video2world_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; expected a local directory holding a Mistr"):
        PromptUpsampler.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="expected a local directory holding Pixtral-12B"):
        PromptUpsampler.from_pretrained(tmp_path / "missing", "video2world")
    with pytest.raises(ValueError, match=r"has no config\.json; expected a Mistral causal LM"):
        PromptUpsampler.from_pretrained(tmp_path)
    wrong = r"holds a 'mistral' model \(that is a text2world upsampler: pass kind='text2world'\)"
    with pytest.raises(ValueError, match=wrong):
        PromptUpsampler.from_pretrained(text2world_dir, "video2world")
    wrong = r"holds a 'llava' model with a 'pixtral' vision tower .*expected a Mistral"
    with pytest.raises(ValueError, match=wrong):
        PromptUpsampler.from_pretrained(video2world_dir, "text2world")
    with pytest.raises(ValueError, match="kind must be 'text2world' or 'video2world'"):
        PromptUpsampler.from_pretrained(text2world_dir, "image2world")
    with pytest.raises(TypeError, match=r"seed must be an int >= 0, got 1\.5"):
        PromptUpsampler.from_pretrained(text2world_dir, seed=1.5)
    text2world = PromptUpsampler.from_pretrained(text2world_dir, notify=lambda _: None)
    video2world = PromptUpsampler.from_pretrained(video2world_dir, "video2world", notify=lambda _: None)
    with pytest.raises(ValueError, match="the Text2World upsampler takes no video"):
        text2world("x", torch.zeros(3, 1, 8, 8))
    with pytest.raises(ValueError, match=r"videos must be \(B, 3, T, H, W\)"):
        video2world("x")
    with pytest.raises(ValueError, match=r"2 prompt\(s\) for a batch of 1 video"):
        video2world.upsample(["a", "b"], torch.zeros(1, 3, 1, 8, 8))
    with pytest.raises(TypeError, match="prompts must be a list of strings"):
        text2world.upsample("a bare string")
