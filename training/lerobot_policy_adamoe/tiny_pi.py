"""A test-only small size of LeRobot's PI0/PI05, so they build, train and export on a CPU in seconds.

LeRobot builds PI0/PI05 from two Gemma variant names (`gemma_2b` for PaliGemma, `gemma_300m` for the action
expert) and a SigLIP-So400m vision tower; none of their sizes is configurable (openpi has a "dummy" variant
for tests, LeRobot's port does not). While `tiny_pi_sizes()` is open, LeRobot's `get_gemma_config` returns
the sizes below for those two names and PaliGemma gets the small vision tower below, projected to the small
PaliGemma width. Everything else is LeRobot's: the classes, their forward code, the state-dict layout and
PaliGemma's 257152-token vocabulary (so any PaliGemma-compatible tokenizer's ids stay valid).

A model built this way has these shapes whatever its variant names say, so only an explicit field
(`AdaMoEPI0Config.tiny_test_model`, saved in config.json) opens it for an AdaMoE policy; tests open it
around a plain `PI0Policy`/`PI05Policy` to get a dense base of the same size.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi_gemma import PaliGemmaForConditionalGenerationWithPiGemma

# LeRobot's layer code reshapes the joint attention to 8 heads, and the PaliGemma and expert tokens attend
# to each other, so both keep 8 heads, one KV head and a common head_dim (as the real sizes do).
TINY_GEMMA = {
    'gemma_2b': {'width': 64, 'depth': 2, 'mlp_dim': 128, 'num_heads': 8, 'num_kv_heads': 1, 'head_dim': 8},
    'gemma_300m': {'width': 32, 'depth': 2, 'mlp_dim': 128, 'num_heads': 8, 'num_kv_heads': 1, 'head_dim': 8},
}
TINY_SIGLIP = {'hidden_size': 32, 'intermediate_size': 64, 'num_hidden_layers': 1, 'num_attention_heads': 2}
# Images of TINY_IMAGE_SIZE pixels give (TINY_IMAGE_SIZE / 14)^2 = 16 tokens per camera (SigLIP patch 14).
TINY_IMAGE_SIZE = 56
_PALIGEMMA_CLASS = 'PaliGemmaForConditionalGenerationWithPiGemma'


def _tiny_gemma_config(module: ModuleType, variant: str) -> Any:
    if variant not in TINY_GEMMA:
        raise ValueError(f'no tiny size for Gemma variant {variant!r}; known: {sorted(TINY_GEMMA)}')
    return module.GemmaConfig(**TINY_GEMMA[variant])


def _tiny_paligemma(config: Any) -> PaliGemmaForConditionalGenerationWithPiGemma:
    for key, value in TINY_SIGLIP.items():
        setattr(config.vision_config, key, value)
    # LeRobot fixes the projection to gemma_2b's width (2048); image tokens must have the text width.
    config.vision_config.projection_dim = config.text_config.hidden_size
    return PaliGemmaForConditionalGenerationWithPiGemma(config=config)


@contextlib.contextmanager
def tiny_pi_sizes() -> Iterator[None]:
    """Build LeRobot's PI0/PI05 models at the tiny size while open (see the module docstring)."""
    with contextlib.ExitStack() as stack:
        for module in (modeling_pi0, modeling_pi05):
            tiny_gemma = functools.partial(_tiny_gemma_config, module)
            stack.enter_context(mock.patch.object(module, 'get_gemma_config', tiny_gemma))
            stack.enter_context(mock.patch.object(module, _PALIGEMMA_CLASS, _tiny_paligemma))
        yield


PI_KINDS = ('pi0', 'pi05')


def tiny_pi_kwargs() -> dict[str, Any]:
    """PI0Config/PI05Config fields for a small, fast CPU model (images and vectors shrunk to match)."""
    return {
        'device': 'cpu',
        'dtype': 'float32',
        'image_resolution': (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE),
        'chunk_size': 8,
        'n_action_steps': 8,
        'max_state_dim': 8,
        'max_action_dim': 8,
        'tokenizer_max_length': 32,
        'push_to_hub': False,
    }


def make_tiny_pi_config(kind: str, tokenizer_dir: str | Path, **overrides: Any) -> Any:
    """Return an AdaMoEPI0Config (`kind='pi0'`) or AdaMoEPI05Config (`'pi05'`) at the tiny size, offline."""
    from lerobot_policy_adamoe.configuration_adamoe_pi import AdaMoEPI0Config, AdaMoEPI05Config

    if kind not in PI_KINDS:
        raise ValueError(f'kind must be one of {PI_KINDS}, got {kind!r}')
    config_class = AdaMoEPI0Config if kind == 'pi0' else AdaMoEPI05Config
    kwargs = {**tiny_pi_kwargs(), 'tiny_test_model': True, 'tokenizer_name': str(tokenizer_dir)}
    return config_class(**{**kwargs, **overrides})


def make_tiny_dense_pi_config(kind: str, **overrides: Any) -> Any:
    """Return LeRobot's own PI0Config/PI05Config with the tiny fields (build its policy in `tiny_pi_sizes()`)."""
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi05.configuration_pi05 import PI05Config

    if kind not in PI_KINDS:
        raise ValueError(f'kind must be one of {PI_KINDS}, got {kind!r}')
    return (PI0Config if kind == 'pi0' else PI05Config)(**{**tiny_pi_kwargs(), **overrides})
