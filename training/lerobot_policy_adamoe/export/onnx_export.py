"""Trace the prefix and denoise graphs of a SmolVLA-style policy to ONNX (static shapes, batch 1)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from adamoe_contract import bundle_format as fmt
from lerobot_policy_adamoe.export.external_data import scratch_file
from lerobot_policy_adamoe.export.graphs import DenoiseStepGraph, PrefixGraph, export_experts, traceable_vision
from lerobot_policy_adamoe.export.metadata import camera_names, tensor_entry
from lerobot_policy_adamoe.export.onnx_ops import export_symbolics

OPSET = 17


def example_prefix_inputs(policy: nn.Module, dtype: torch.dtype) -> dict[str, Tensor]:
    """Build representative prefix inputs: values only matter for tracing, shapes get frozen."""
    config = policy.config
    gen = torch.Generator().manual_seed(0)
    model_w, model_h = config.resize_imgs_with_padding
    inputs = {
        fmt.image_input_name(cam): (torch.rand(1, 3, model_h, model_w, generator=gen) * 2 - 1).to(dtype)
        for cam in camera_names(config)
    }
    inputs.update(example_language_inputs(config.tokenizer_max_length, gen))
    inputs[fmt.STATE] = torch.randn(1, config.max_state_dim, generator=gen).to(dtype)
    return inputs


def example_language_inputs(length: int, gen: torch.Generator) -> dict[str, Tensor]:
    """Token ids and a partly padded mask (padding must not be baked into the traced graph)."""
    mask = torch.zeros(1, length, dtype=torch.bool)
    mask[0, : length // 2] = True
    return {fmt.LANG_TOKENS: torch.randint(0, 100, (1, length), generator=gen), fmt.LANG_MASK: mask}


def _export(module: nn.Module, args: tuple[Tensor, ...], file: Path, inputs: list[str], outputs: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the tracer warns about every Python-side shape read
        torch.onnx.export(
            module,
            args,
            str(file),
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            do_constant_folding=True,
        )
    onnx.checker.check_model(str(file), full_check=True)


def trace_graphs(
    prefix: nn.Module,
    prefix_inputs: dict[str, Tensor],
    make_denoise: Callable[[int], nn.Module],
    denoise_inputs: dict[str, Tensor],
    files: tuple[Path, Path],
) -> dict[str, Any]:
    """Export the prefix graph, then the denoise graph fed its outputs; return both graphs' I/O for bundle.json.

    make_denoise(num_cache_layers) builds the denoise graph; denoise_inputs are its inputs before the cache.
    """
    prefix_outputs = prefix(*prefix_inputs.values())
    num_layers = (len(prefix_outputs) - 1) // 2
    prefix_output_names = [fmt.PREFIX_PAD_MASK, *fmt.cache_names(num_layers)]
    _export(prefix, tuple(prefix_inputs.values()), files[0], list(prefix_inputs), prefix_output_names)
    denoise = make_denoise(num_layers).eval()
    denoise_inputs = denoise_inputs | dict(zip(prefix_output_names, prefix_outputs, strict=True))
    denoise_outputs = denoise(*denoise_inputs.values())
    denoise_output_names = [fmt.VELOCITY]
    if len(denoise_outputs) == 3:
        denoise_output_names += [fmt.ROUTING_INDICES, fmt.ROUTING_WEIGHTS]
    _export(denoise, tuple(denoise_inputs.values()), files[1], list(denoise_inputs), denoise_output_names)
    return {
        'prefix': {
            'inputs': {k: tensor_entry(v) for k, v in prefix_inputs.items()},
            'outputs': {k: tensor_entry(v) for k, v in zip(prefix_output_names, prefix_outputs, strict=True)},
        },
        'denoise': {
            'inputs': {k: tensor_entry(v) for k, v in denoise_inputs.items()},
            'outputs': {k: tensor_entry(v) for k, v in zip(denoise_output_names, denoise_outputs, strict=True)},
        },
    }


@torch.no_grad()
def export_graphs(policy: nn.Module, scratch: Path, fp16: bool = False, expert_graph: str = 'sparse') -> dict[str, Any]:
    """Trace prefix.onnx and denoise.onnx into scratch (see `place_graphs`); return their I/O for bundle.json."""
    flow, config = policy.model, policy.config
    dtype = torch.float16 if fp16 else torch.float32
    prefix = PrefixGraph(flow, len(camera_names(config))).eval()
    x_t = torch.randn(1, config.chunk_size, config.max_action_dim, generator=torch.Generator().manual_seed(1))
    denoise_inputs = {fmt.X_T: x_t.to(dtype), fmt.TIME: torch.tensor([0.7], dtype=dtype)}
    model_w, model_h = config.resize_imgs_with_padding
    with traceable_vision(flow, (model_h, model_w)), export_experts(flow, expert_graph), export_symbolics(OPSET):
        return trace_graphs(
            prefix,
            example_prefix_inputs(policy, dtype),
            lambda num_layers: DenoiseStepGraph(flow, num_layers),
            denoise_inputs,
            (scratch_file(scratch, fmt.PREFIX_FILE), scratch_file(scratch, fmt.DENOISE_FILE)),
        )
