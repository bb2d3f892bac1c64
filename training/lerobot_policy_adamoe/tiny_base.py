"""A tiny, locally generated SmolVLM backbone so SmolVLA-style policies build with no hub access.

SmolVLA always reads `config.json` and the processor/tokenizer files of `vlm_model_name` with
`from_pretrained`; with `load_vlm_weights=False` it then initialises random weights from that config.
Writing those files ourselves (with a byte-level BPE trained on a few robot instructions) gives a fully
offline, few-MB base model that trains in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# Small corpus: enough merges that instructions become a handful of tokens, not a byte per character.
_INSTRUCTION_CORPUS = [
    'pick up the red cube',
    'pick the cube and place it in the bowl',
    'place the cube on the plate',
    'push the block to the left',
    'push the block to the right',
    'move the arm to the home position',
    'grasp the green block and lift it',
    'put the blue cube into the box',
    'open the gripper',
    'close the gripper',
    'stack the red cube on the blue cube',
    'pick up the object and put it down',
    'reach for the cube',
    'lift the cube above the table',
    'move the cube to the target',
    'do nothing',
]

_SPECIAL_TOKENS = {
    'fake_image_token': '<fake_token_around_image>',
    'image_token': '<image>',
    'global_image_token': '<global-img>',
    'end_of_utterance_token': '<end_of_utterance>',
}
_BASIC_TOKENS = ['<|endoftext|>', '<|im_start|>', '<pad>']


def _grid_tokens() -> list[str]:
    """Grid tokens <row_i_col_j>, which the SmolVLM processor references when images are split."""
    return [f'<row_{r}_col_{c}>' for r in range(1, 7) for c in range(1, 7)]


def _bpe_tokenizer(vocab_size: int) -> Any:
    """Return a PreTrainedTokenizerFast over a BPE trained on the instruction corpus, with SmolVLM's special tokens."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=_train_tokenizer(vocab_size),
        bos_token='<|im_start|>',
        eos_token='<end_of_utterance>',
        pad_token='<pad>',
        unk_token='<|endoftext|>',
        extra_special_tokens=dict(_SPECIAL_TOKENS),
    )


def _text_encoder_tokenizer(name: str) -> Any:
    """Return the text encoder's own tokenizer (its ids, as its embedding expects) plus SmolVLM's special tokens."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import PreTrainedTokenizerFast

    from lerobot_policy_adamoe.text_encoder import text_encoder_folder

    tok = Tokenizer.from_file(str(text_encoder_folder(name) / 'tokenizer.json'))
    # Appended after the encoder's vocabulary, so its own ids stay; instructions never contain them.
    tok.add_special_tokens([AddedToken(t, special=True) for t in [*_SPECIAL_TOKENS.values(), *_grid_tokens()]])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token='[CLS]',
        sep_token='[SEP]',
        pad_token='[PAD]',
        unk_token='[UNK]',
        mask_token='[MASK]',
        extra_special_tokens=dict(_SPECIAL_TOKENS),
    )


def _train_tokenizer(vocab_size: int) -> Any:
    """Train a byte-level BPE on the built-in instruction corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_BASIC_TOKENS + list(_SPECIAL_TOKENS.values()) + _grid_tokens(),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_INSTRUCTION_CORPUS * 4, trainer=trainer)
    return tok


def make_tiny_backbone(
    out_dir: Path,
    *,
    text_hidden: int = 128,
    text_intermediate: int = 256,
    layers: int = 2,
    text_heads: int = 4,
    text_kv_heads: int = 2,
    vision_hidden: int = 64,
    vision_intermediate: int = 128,
    vision_layers: int = 2,
    vision_heads: int = 2,
    image_size: int = 128,
    patch_size: int = 16,
    scale_factor: int = 2,
    vocab_size: int = 512,
    embedding_rows: int | None = None,
    text_encoder: str | None = None,
) -> Path:
    """Write a tiny SmolVLM config + processor + tokenizer folder to `out_dir` and return it.

    `vocab_size` sizes the BPE tokenizer; `embedding_rows` (default: the tokenizer's size) sizes the token
    embedding table, so a real-size backbone gets its real embedding while instructions stay few tokens.
    With `text_encoder` (a name in text_encoder.TEXT_ENCODERS), the tokenizer is that encoder's instead of the BPE.
    """
    from transformers import (
        SmolVLMConfig,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    if image_size % (patch_size * scale_factor) != 0:
        raise ValueError(
            f'image_size {image_size} must be a multiple of patch_size*scale_factor = {patch_size * scale_factor}'
        )
    if text_hidden % text_heads != 0:
        raise ValueError(f'text_hidden {text_hidden} is not divisible by text_heads {text_heads}')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tok = _bpe_tokenizer(vocab_size) if text_encoder is None else _text_encoder_tokenizer(text_encoder)
    if embedding_rows is not None and embedding_rows < len(tok):
        raise ValueError(f'embedding_rows {embedding_rows} is smaller than the tokenizer ({len(tok)} tokens)')
    # Image tokens per image after pixel shuffle: (side/patch)^2 / scale^2.
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    image_processor = SmolVLMImageProcessor(
        do_resize=False,
        do_image_splitting=False,
        size={'longest_edge': image_size},
        max_image_size={'longest_edge': image_size},
    )
    processor = SmolVLMProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=image_seq_len,
    )
    config = SmolVLMConfig(
        text_config={
            'model_type': 'llama',
            'hidden_size': text_hidden,
            'intermediate_size': text_intermediate,
            'num_hidden_layers': layers,
            'num_attention_heads': text_heads,
            'num_key_value_heads': text_kv_heads,
            'head_dim': text_hidden // text_heads,
            'vocab_size': embedding_rows or len(tok),
            'max_position_embeddings': 2048,
        },
        vision_config={
            'model_type': 'smolvlm_vision',
            'hidden_size': vision_hidden,
            'intermediate_size': vision_intermediate,
            'num_hidden_layers': vision_layers,
            'num_attention_heads': vision_heads,
            'patch_size': patch_size,
            'image_size': image_size,
        },
        scale_factor=scale_factor,
        image_token_id=tok.convert_tokens_to_ids(_SPECIAL_TOKENS['image_token']),
        vocab_size=embedding_rows or len(tok),
    )
    config.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def tiny_smolvla_kwargs(backbone_dir: Path) -> dict[str, Any]:
    """SmolVLA config fields for a tiny, random-init, CPU model on `backbone_dir`."""
    return {
        'vlm_model_name': str(backbone_dir),
        'load_vlm_weights': False,
        'device': 'cpu',
        'resize_imgs_with_padding': (128, 128),
        'chunk_size': 16,
        'n_action_steps': 16,
        'num_steps': 10,
        'num_vlm_layers': 2,
        'tokenizer_max_length': 24,
        'push_to_hub': False,
    }


def make_tiny_smolvla_config(backbone_dir: Path, **overrides: Any) -> Any:
    """Return a SmolVLAConfig for a tiny random-init SmolVLA on `backbone_dir` (cpu, no hub access)."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

    return SmolVLAConfig(**{**tiny_smolvla_kwargs(backbone_dir), **overrides})


def make_tiny_adamoe_config(backbone_dir: Path, **overrides: Any) -> Any:
    """Return an AdaMoEConfig with the tiny SmolVLA base on `backbone_dir`."""
    from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig

    return AdaMoEConfig(**{**tiny_smolvla_kwargs(backbone_dir), **overrides})
