"""Writes a complete policy bundle folder: graphs, tokenizer, bundle.json with its content hash.

SmolVLA bundles take the tokenizer file of the backbone folder; PI0/PI05 bundles take the tokenizer of the
policy's own preprocessor (LeRobot's PI processors load it by name) and record how that preprocessor builds the
prompt: PI0 appends a newline, PI05 writes the task and its discretised state.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from lerobot.policies.pi0.processor_pi0 import Pi0NewLineProcessor
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor import TokenizerProcessorStep
from torch import nn
from transformers import AutoTokenizer

from adamoe_contract import bundle_format as fmt
from lerobot_policy_adamoe.export.compact_encoder import STORAGE, compact_text_encoder
from lerobot_policy_adamoe.export.external_data import EXTERNAL_DATA_THRESHOLD, place_graphs, scratch_file
from lerobot_policy_adamoe.export.family import model_family
from lerobot_policy_adamoe.export.metadata import DatasetNames, build_metadata, norm_entry
from lerobot_policy_adamoe.export.onnx_export import export_graphs
from lerobot_policy_adamoe.export.pi_graphs import export_pi_graphs

Progress = Callable[[str], None]
# Bins of PI05's state tokens: Pi05PrepareStateTokenizerProcessorStep has them fixed (openpi's tokenizer).
PI05_STATE_BINS = 256


def normalization_entries(config: Any, stats: Mapping[str, Mapping[str, Any]], eps: float = 1e-8) -> dict[str, Any]:
    """State and action normalisation exactly as the policy's NormalizerProcessorStep applies it."""
    mapping = {str(k): getattr(v, 'value', v) for k, v in config.normalization_mapping.items()}
    return {
        'state': norm_entry(
            mapping.get('STATE', 'IDENTITY'),
            stats.get('observation.state'),
            eps,
            config.robot_state_feature.shape[0],
            'observation.state',
        ),
        'action': norm_entry(
            mapping.get('ACTION', 'IDENTITY'), stats.get('action'), eps, config.action_feature.shape[0], 'action'
        ),
    }


def tokenizer_entry(config: Any, out_dir: Path) -> dict[str, Any]:
    """Copy the backbone's tokenizer.json and record SmolVLA's prompt formatting and padding."""
    backbone = Path(config.vlm_model_name)
    source = backbone / fmt.TOKENIZER_FILE
    if not source.is_file():
        raise FileNotFoundError(f"{source}: the policy's tokenizer file is needed for the bundle")
    shutil.copyfile(source, out_dir / fmt.TOKENIZER_FILE)
    hf_tokenizer = AutoTokenizer.from_pretrained(str(backbone))
    if hf_tokenizer.pad_token_id is None:
        raise ValueError(f'{backbone}: tokenizer has no pad token; SmolVLA pads instructions')
    return {
        'file': fmt.TOKENIZER_FILE,
        'max_length': config.tokenizer_max_length,
        'pad_token_id': int(hf_tokenizer.pad_token_id),
        'padding_side': 'right',
        'truncation': True,
        'append_newline': True,  # LeRobot's NewLineTaskProcessorStep
        'add_special_tokens': True,
    }


def pi_prompt_entry(preprocessor: Any) -> dict[str, Any]:
    """How a PI preprocessor turns the task into the text it tokenises, read from the steps it has."""
    steps = preprocessor.steps
    entry: dict[str, Any] = {'append_newline': any(isinstance(step, Pi0NewLineProcessor) for step in steps)}
    if any(isinstance(step, Pi05PrepareStateTokenizerProcessorStep) for step in steps):
        entry['state_bins'] = PI05_STATE_BINS
    return entry


def pi_tokenizer_entry(preprocessor: Any, out_dir: Path) -> dict[str, Any]:
    """Save the tokenizer of the PI preprocessor's TokenizerProcessorStep as tokenizer.json; return its entry."""
    steps = [step for step in preprocessor.steps if isinstance(step, TokenizerProcessorStep)]
    if len(steps) != 1:
        raise ValueError(f'a PI preprocessor has one TokenizerProcessorStep, this one has {len(steps)}')
    step = steps[0]
    if (step.padding_side, step.padding, step.truncation) != ('right', 'max_length', True):
        raise ValueError(
            'the runtime tokenizer pads on the right to max_length and truncates; the preprocessor has '
            f'padding_side={step.padding_side!r}, padding={step.padding!r}, truncation={step.truncation}'
        )
    tokenizer = step.input_tokenizer
    if tokenizer.pad_token_id is None:
        raise ValueError(f'{step.tokenizer_name}: tokenizer has no pad token; PI pads prompts to max_length')
    # The `tokenizers` object the HF tokenizer runs, with the special-token handling it was loaded with.
    tokenizer.backend_tokenizer.save(str(out_dir / fmt.TOKENIZER_FILE))
    return {
        'file': fmt.TOKENIZER_FILE,
        'max_length': step.max_length,
        'pad_token_id': int(tokenizer.pad_token_id),
        'padding_side': 'right',
        'truncation': True,
        **pi_prompt_entry(preprocessor),
        'add_special_tokens': True,
    }


def half_precision_copy(policy: nn.Module, dtype: torch.dtype = torch.float16) -> nn.Module:
    """16-bit copy (float16 for an fp16 export, bfloat16 for PyTorch on a GPU); the fp32 policy stays the reference."""
    half = copy.deepcopy(policy).to(dtype)
    # SmolVLA upcasts the expert output to float32 before action_out_proj, so that layer must stay fp32.
    half.model.action_out_proj.float()
    return half


def write_bundle(
    policy: nn.Module,
    out_dir: Path,
    names: DatasetNames,
    stats: Mapping[str, Mapping[str, Any]],
    source: dict[str, Any],
    fp16: bool = False,
    eps: float = 1e-8,
    progress: Progress | None = None,
    expert_graph: str = 'sparse',
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    preprocessor: Any | None = None,
    compact_text_encoder_weights: bool = False,
) -> str:
    """Export `policy` (a SmolVLA, PI0 or PI05 LeRobot policy, eval mode) into out_dir; return the bundle_id.

    Graphs that together exceed `external_data_threshold` bytes keep their weights in `<graph>.onnx.data`.
    A PI0/PI05 bundle needs the policy's `preprocessor` (its tokenizer and prompt) and is fp32 only.
    `compact_text_encoder_weights` stores a frozen text encoder compactly (`compact_encoder`), noted in `source`.
    """
    report = progress or (lambda _msg: None)
    family = model_family(policy.model)
    if family != fmt.SMOLVLA and fp16:
        raise ValueError(f'fp16 {family} bundles are not implemented; export this policy in fp32')
    if fp16 and compact_text_encoder_weights:
        raise ValueError('compact text-encoder storage is for float32 bundles; export without fp16')
    if family != fmt.SMOLVLA and preprocessor is None:
        raise ValueError(f'a {family} bundle takes its tokenizer and prompt from the policy preprocessor: pass it')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    policy.eval()
    report('normalisation stats')
    normalization = normalization_entries(policy.config, stats, eps)
    report('tokenizer')
    if family == fmt.SMOLVLA:
        tokenizer = tokenizer_entry(policy.config, out_dir)
    else:
        tokenizer = pi_tokenizer_entry(preprocessor, out_dir)
    report('ONNX graphs (prefix, denoise)')
    with tempfile.TemporaryDirectory(prefix='.export_', dir=out_dir) as scratch:
        if family == fmt.SMOLVLA:
            graphs = export_graphs(
                half_precision_copy(policy) if fp16 else policy, Path(scratch), fp16=fp16, expert_graph=expert_graph
            )
        else:
            graphs = export_pi_graphs(policy, Path(scratch), expert_graph=expert_graph)
        if compact_text_encoder_weights:
            report('text encoder weights: int8 tables, float16 matrices')
            compact_text_encoder(scratch_file(Path(scratch), fmt.PREFIX_FILE))
            source = {**source, 'weights': STORAGE}
        report('checking and placing the graphs')
        external_data = place_graphs(Path(scratch), out_dir, external_data_threshold)
    metadata = build_metadata(policy, names, normalization, tokenizer, graphs, source, 'fp16' if fp16 else 'fp32')
    if metadata['routing']['mode'] != 'dense':
        metadata['routing']['expert_graph'] = expert_graph
    if external_data:  # absent otherwise, so small bundles keep their exact bundle.json
        metadata[fmt.EXTERNAL_DATA] = external_data
    report('content hash')
    metadata['bundle_id'] = fmt.content_hash(out_dir, fmt.content_files(external_data.values()))
    (out_dir / fmt.METADATA_FILE).write_text(json.dumps(metadata, indent=2) + '\n')
    return metadata['bundle_id']
