"""Tiny transformers VLMs built from config with random weights, for the VLM tests.

Two architectures, as the real models use them:
- `build_llava`: LLaVA with a SigLIP vision tower and a Llama text model (JoyCaption Beta One);
- `build_qwen2vl`: Qwen2-VL (ToriiGate v0.4); `build_qwen25vl`: Qwen2.5-VL.
- `build_text_only`: a text-only Qwen2ForCausalLM, which no VLM loader may accept.

Each is saved with `save_pretrained` into a folder together with a byte-level BPE tokenizer
trained offline (`tokenizers`), the matching processor and a chat template, exactly as
a model folder a user downloads. Hidden sizes are multiples of 64 so bitsandbytes nf4 runs
on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .scripted import Script, weights

SEED = 0

LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

LLAMA_SPECIALS = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<image>", "<|finetune_right_pad_id|>"]
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]

CORPUS = [
    "You are a strict art critic scoring adult anime-style illustrations.",
    "Score each axis from 0 to 100. Rate the image's composition on a scale from 1 to 9.",
    "Answer with a single digit. Rating: 1 2 3 4 5 6 7 8 9",
    '{"erotic": 70, "composition": 65, "appeal": 80, "typeset": 50, "overall": 72, '
    '"comment": "構図と塗りが安定している。"}',
    "I'm sorry, but I can't help with that request. As an AI I am unable to do this.",
    "申し訳ありませんが、その画像には対応できません。",
    "erotic composition appeal typeset overall comment tags rating general sensitive",
    "手の崩れと構図の偏りが目立ち、完成度は低い。キャラクターの魅力がよく伝わる。",
]


def _corpus() -> list[str]:
    """The sentences above plus the default rubric's prompts, so prompts tokenize compactly
    (as they do with a real model's large vocabulary)."""
    from scoring.core.rubric import Rubric

    rubric = Rubric.default()
    prompts = [rubric.system_prompt(), *(rubric.user_prompt(attempt=a) for a in range(3)),
               *(rubric.logprob_prefix(a) for a in rubric.axes)]
    return CORPUS + prompts


def train_tokenizer(specials: list[str], vocab_size: int = 1000):
    """A byte-level BPE tokenizer trained on a small corpus; digits are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(_corpus() * 4, trainer)
    return tok


def _fast(tok, **specials):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def _vocab(tokenizer) -> int:
    return (len(tokenizer) + 63) // 64 * 64


def build_llava(path: str | Path, image_size: int = 32, patch: int = 8,
                script: Script | None = None) -> Path:
    """A JoyCaption-shaped LLaVA (SigLIP + Llama) saved into `path`; with `script`, a
    scripted one (see `models.scripted`) that writes that answer."""
    import torch
    from transformers import (
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        SiglipImageProcessor,
        SiglipVisionConfig,
    )

    path = Path(path)
    trained = train_tokenizer(LLAMA_SPECIALS)
    if script is not None:  # the comment's pieces as tokens
        trained.add_tokens(script.pieces())
    tokenizer = _fast(
        trained, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>", extra_special_tokens={"image_token": "<image>"},
    )
    tokenizer.chat_template = LLAMA_TEMPLATE
    image_processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
        image_std=[0.5] * 3,
    )
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
        vision_feature_select_strategy="full", chat_template=LLAMA_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
            image_size=image_size, patch_size=patch,
        ).to_dict(),
        text_config=LlamaConfig(
            vocab_size=_vocab(tokenizer), hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
            max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        ).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2, vision_feature_select_strategy="full",
        projector_hidden_act="gelu", image_seq_length=(image_size // patch) ** 2,
    )
    torch.manual_seed(SEED)
    model = LlavaForConditionalGeneration(config).eval()
    if script is not None:
        _script_llama(model, tokenizer, script)
    _save(model, processor, path)
    return path


def _script_llama(model, tokenizer, script: Script) -> None:
    """Make the Llama text model of a LLaVA write `script`'s answer."""
    import torch

    lm = model.model.language_model
    n_vocab, n_embd = lm.embed_tokens.weight.shape
    pieces = [tokenizer.decode([i]) for i in range(len(tokenizer))]
    pieces += [f"<unused{i}>" for i in range(len(pieces), n_vocab)]
    embedding, output = weights(pieces, script, end=tokenizer.eos_token, n_embd=n_embd)
    with torch.no_grad():
        lm.embed_tokens.weight.copy_(torch.from_numpy(embedding))
        model.lm_head.weight.copy_(torch.from_numpy(output))
        for layer in lm.layers:  # the blocks add nothing to the residual stream
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()


def build_qwen2vl(path: str | Path, version: str = "2") -> Path:
    """A ToriiGate-shaped Qwen2-VL (or, with version "2.5", a Qwen2.5-VL) saved into `path`."""
    import torch
    import transformers as tf

    path = Path(path)
    tokenizer = _fast(
        train_tokenizer(QWEN_SPECIALS), eos_token="<|im_end|>", pad_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    pixels = {"shortest_edge": 56 * 56, "longest_edge": 56 * 56}
    processor_class = tf.Qwen2_5_VLProcessor if version == "2.5" else tf.Qwen2VLProcessor
    processor = processor_class(
        image_processor=tf.Qwen2VLImageProcessor(size=pixels),
        video_processor=tf.Qwen2VLVideoProcessor(size=pixels),
        tokenizer=tokenizer, chat_template=CHATML_TEMPLATE,
    )
    ids = tokenizer.convert_tokens_to_ids
    specials = dict(bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
                    pad_token_id=ids("<|endoftext|>"))
    text = dict(
        vocab_size=_vocab(tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "mrope_section": [4, 6, 6]},
        **specials,
    )
    if version == "2.5":
        config_class, model_class = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
        vision = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2,
                      out_hidden_size=64, fullatt_block_indexes=[1])
    else:
        config_class, model_class = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
        vision = dict(depth=2, embed_dim=64, hidden_size=64, num_heads=2, mlp_ratio=2)
    config = config_class(
        text_config=text, vision_config=vision,
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        **specials,
    )
    torch.manual_seed(SEED)
    model = model_class(config).eval()
    _save(model, processor, path)
    return path


def build_text_only(path: str | Path) -> Path:
    """A text-only Qwen2ForCausalLM (what `models/LLM` holds for other packs): a complete,
    loadable folder with no vision tower."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    tokenizer = _fast(train_tokenizer(QWEN_SPECIALS), eos_token="<|im_end|>",
                      pad_token="<|endoftext|>")
    tokenizer.chat_template = CHATML_TEMPLATE
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2Config(
        vocab_size=_vocab(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=1024,
        bos_token_id=ids("<|endoftext|>"), eos_token_id=ids("<|im_end|>"),
        pad_token_id=ids("<|endoftext|>"),
    )
    torch.manual_seed(SEED)
    model = Qwen2ForCausalLM(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.generation_config.do_sample = False
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_qwen25vl(path: str | Path) -> Path:
    """A Qwen2.5-VL saved into `path` (another image-text-to-text model for the Auto classes)."""
    return build_qwen2vl(path, version="2.5")


def _save(model, processor, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    model.generation_config.do_sample = False
    model.save_pretrained(path)
    processor.save_pretrained(path)


VISION = {"llava": build_llava, "qwen2vl": build_qwen2vl, "qwen25vl": build_qwen25vl}
"""The vision-language builders by architecture."""


def sample_image(seed: int, size: int = 48) -> np.ndarray:
    """A float32 HxWx3 RGB image in 0–1 that differs per seed."""
    rng = np.random.default_rng(seed)
    return rng.random((size, size, 3), dtype=np.float32)
