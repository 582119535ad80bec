"""Builders of tiny random video-LLMs saved as Hugging Face folders, for offline tests.

Each builder writes what a hub checkpoint holds -- ``config.json``, safetensors weights,
``generation_config.json``, the tokenizer, the image/video processors and the chat template --
with ``save_pretrained`` into a folder, so a test loads it back through the same
``AutoProcessor`` / ``AutoModelForImageTextToText`` path users take with a real model.

Sizes are CPU-tiny (hidden 32, 1-2 layers, a vocabulary of ~100 words, a few visual tokens per
frame) so building and answering take well under a second each. The tokenizer is a word-level
``tokenizers`` model over :data:`WORDS` plus the special tokens each family's processor and chat
template use. The language model's output rows of the special tokens (end of sequence,
placeholders, chat markers) are zeroed, so greedy decoding never ends early and the answer is
plain words: a random model still answers ``max_new_tokens`` words, deterministically.

    from tests.tiny_vlm import build_tiny_vlm
    folder = build_tiny_vlm("qwen2_vl", tmp_path / "qwen")   # or "llava_next_video", "qwen2_5_vl"
    # then: avkit ask clip.mp4 "what happens?" --model <folder>
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

# Plain words the tiny models answer with (the prompt's other words map to [UNK]).
WORDS = (
    "a the of and to in is it on with at for from by as that this there what who where when how "
    "which video clip frame scene person man woman people dog cat car ball hand table kitchen pan "
    "pancake flour egg milk cook cooks cooking flip flips pour pours mix mixes stir eat plate "
    "red blue green white black small big left right up down moving moves still fast slow "
    "first then next finally begins ends shows see sees seen looks one two three seconds "
    "describe happens happening yes no maybe"
).split()

LLAVA_NEXT_VIDEO_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content %}{% set image_count.value = image_count.value + 1 %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def word_tokenizer(special: list[str], *, bos: str | None, eos: str, pad: str, unk: str = "[UNK]",
                   extra_words: tuple[str, ...] = ()):
    """A ``PreTrainedTokenizerFast`` over ``special`` + :data:`WORDS` (ids in that order).

    Words are split on whitespace and punctuation; unknown words become ``unk``; decoding joins
    tokens with spaces. ``special`` must contain ``bos`` (if given), ``eos``, ``pad`` and ``unk``.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab: dict[str, int] = {}
    for token in [*special, *WORDS, *extra_words]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(list(special))
    named = {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk}
    others = [t for t in special if t not in named.values()]
    return PreTrainedTokenizerFast(tokenizer_object=backend, **{k: v for k, v in named.items() if v},
                                   additional_special_tokens=others)


def _silence_special_tokens(model: torch.nn.Module, ids: list[int]) -> None:
    """Zero the output rows of ``ids`` so greedy decoding never picks them (random rows score higher)."""
    head = model.get_output_embeddings()
    with torch.no_grad():
        head.weight[ids] = 0.0
        if getattr(head, "bias", None) is not None:
            head.bias[ids] = -1e4


def _save(model, processor, tokenizer, folder: Path) -> Path:
    special_ids = [i for t, i in tokenizer.get_vocab().items() if t in tokenizer.all_special_tokens]
    _silence_special_tokens(model, special_ids)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def build_llava_next_video(folder: str | Path, seed: int = 0) -> Path:
    """LLaVA-NeXT-Video: CLIP vision tower (28x28 frames, 7 px patches) + Llama, 4 tokens per frame.

    The video processor resizes and centre-crops every frame to 28x28; 4x4 patches pooled 2x2
    give 4 visual tokens per frame (``<video>`` is repeated 4 x frames times).
    """
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextImageProcessor,
        LlavaNextVideoConfig,
        LlavaNextVideoForConditionalGeneration,
        LlavaNextVideoProcessor,
        LlavaNextVideoVideoProcessor,
    )

    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>", "USER", "ASSISTANT"]
    tok = word_tokenizer(special, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>")
    vocab = tok.get_vocab()
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=28, patch_size=7, projection_dim=32)
    text = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                       bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"], pad_token_id=vocab["<pad>"])
    config = LlavaNextVideoConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"],
                                  video_token_index=vocab["<video>"], image_grid_pinpoints=[[28, 28]],
                                  image_seq_length=16, video_seq_length=4)
    torch.manual_seed(seed)
    model = LlavaNextVideoForConditionalGeneration(config).eval()
    crop = {"height": 28, "width": 28}
    processor = LlavaNextVideoProcessor(
        video_processor=LlavaNextVideoVideoProcessor(size={"shortest_edge": 28}, crop_size=crop),
        image_processor=LlavaNextImageProcessor(size={"shortest_edge": 28}, crop_size=crop,
                                                image_grid_pinpoints=[[28, 28]]),
        tokenizer=tok, chat_template=LLAVA_NEXT_VIDEO_TEMPLATE, patch_size=7,
        vision_feature_select_strategy="default")
    return _save(model, processor, tok, Path(folder))


def build_qwen2_vl(folder: str | Path, seed: int = 0) -> Path:
    """Qwen2-VL: 14 px patches, 2x2 merge, frames in pairs; 56x56..112x112 frames -> 4..16 tokens per pair.

    A 32x32 video is resized to 56x56 (the processor's minimum), so 8 frames give 4 x 4 = 16
    ``<|video_pad|>`` tokens; larger videos grow up to 112x112 (16 tokens per pair of frames).
    """
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>", "[UNK]", "system", "user", "assistant"]
    tok = word_tokenizer(special, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk="[UNK]",
                         extra_words=("You", "are", "helpful", "assistant."))
    vocab = tok.get_vocab()
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 1024,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None, "eos_token_id": vocab["<|im_end|>"], "pad_token_id": vocab["<|endoftext|>"]}
    vision = {"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=vocab["<|image_pad|>"],
                           video_token_id=vocab["<|video_pad|>"], vision_start_token_id=vocab["<|vision_start|>"],
                           vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                                 tokenizer=tok, video_processor=Qwen2VLVideoProcessor(size=size),
                                 chat_template=QWEN2_VL_TEMPLATE)
    return _save(model, processor, tok, Path(folder))


def build_qwen2_5_vl(folder: str | Path, seed: int = 0) -> Path:
    """Qwen2.5-VL: as :func:`build_qwen2_vl` (same tokenizer, template and frame sizes), plus the
    window-attention vision tower and absolute-time position ids (``second_per_grid_ts``, which
    the processor derives from the video metadata avkit passes)."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
               "<|image_pad|>", "<|video_pad|>", "[UNK]", "system", "user", "assistant"]
    tok = word_tokenizer(special, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk="[UNK]",
                         extra_words=("You", "are", "helpful", "assistant."))
    vocab = tok.get_vocab()
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 1024,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None, "eos_token_id": vocab["<|im_end|>"], "pad_token_id": vocab["<|endoftext|>"]}
    vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
              "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
              "fullatt_block_indexes": [1], "tokens_per_second": 2}
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=vocab["<|image_pad|>"],
                              video_token_id=vocab["<|video_pad|>"], vision_start_token_id=vocab["<|vision_start|>"],
                              vision_end_token_id=vocab["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    size = {"shortest_edge": 56 * 56, "longest_edge": 112 * 112}
    processor = Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(size=size),
                                    tokenizer=tok, video_processor=Qwen2VLVideoProcessor(size=size),
                                    chat_template=QWEN2_VL_TEMPLATE)
    return _save(model, processor, tok, Path(folder))


def build_llava_image_only(folder: str | Path) -> Path:
    """A LLaVA (images only) processor + config: loadable, but not video-capable (no weights written)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaImageProcessor, LlavaProcessor

    special = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "USER", "ASSISTANT"]
    tok = word_tokenizer(special, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>")
    vocab = tok.get_vocab()
    config = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                        num_attention_heads=2, image_size=28, patch_size=7),
                         text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                                 num_hidden_layers=1, num_attention_heads=2),
                         image_token_index=vocab["<image>"])
    processor = LlavaProcessor(image_processor=LlavaImageProcessor(size={"shortest_edge": 28},
                                                                   crop_size={"height": 28, "width": 28}),
                               tokenizer=tok, chat_template=LLAVA_NEXT_VIDEO_TEMPLATE, patch_size=7,
                               vision_feature_select_strategy="default")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(folder))
    processor.save_pretrained(str(folder))
    return folder


def build_text_only(folder: str | Path) -> Path:
    """A BERT config alone: a model folder that is no image-text-to-text model at all."""
    from transformers import BertConfig

    folder = Path(folder)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    config.save_pretrained(str(folder))
    return folder


FAMILIES: dict[str, Callable[..., Path]] = {
    "llava_next_video": build_llava_next_video,
    "qwen2_vl": build_qwen2_vl,
    "qwen2_5_vl": build_qwen2_5_vl,
}


def build_tiny_vlm(family: str, folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny random model of ``family`` (a key of :data:`FAMILIES`) into ``folder``."""
    return FAMILIES[family](folder, seed=seed)
