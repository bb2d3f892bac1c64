"""Builds bundle.json content from a policy, its normalisation stats and the dataset's names."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lerobot
import numpy as np
import torch
from torch import nn

from adamoe_contract import bundle_format as fmt
from adamoe_contract.spec import NORMALIZATION_STATS
from lerobot_policy_adamoe.export.family import model_family
from lerobot_policy_adamoe.export.graphs import find_moe_layers

IMAGE_PREFIX = 'observation.images.'
# How each family fits camera images to the model size: (description, bundle.json `padding`).
_SMOLVLA_RESIZE = ('resize_with_pad (bilinear, align_corners=False, pad left/top)', 'left_top')
_PI_RESIZE = ('resize_with_pad_torch (bilinear, align_corners=False, clamp to [0, 1], pad centred)', 'center')


@dataclass(frozen=True)
class DatasetNames:
    """What the checkpoint alone does not know: names of the state/action entries and the control rate."""

    state_names: list[str]
    joint_names: list[str]
    fps: float


def camera_names(config: Any) -> list[str]:
    """Camera names in the policy's image-feature order (the order the prefix graph takes them)."""
    return [key[len(IMAGE_PREFIX) :] for key in config.image_features]


def norm_entry(mode: str, stats: Mapping[str, Any] | None, eps: float, dim: int, feature: str) -> dict[str, Any]:
    """bundle.json normalisation entry for one feature, exactly LeRobot's normaliser parameters."""
    if mode not in NORMALIZATION_STATS:
        raise ValueError(
            f'{feature}: normalisation mode {mode} is not supported by the runtime ({list(NORMALIZATION_STATS)})'
        )
    entry: dict[str, Any] = {'mode': mode, 'eps': float(eps)}
    for key in NORMALIZATION_STATS[mode]:
        if stats is None or key not in stats:
            raise ValueError(f"{feature}: {mode} normalisation needs '{key}' stats, none in the checkpoint")
        values = np.asarray(torch.as_tensor(stats[key]).float().cpu().numpy(), dtype=np.float32).reshape(-1)
        if values.shape != (dim,):
            raise ValueError(f"{feature}: '{key}' stats have {values.shape[0]} values, the feature has {dim}")
        entry[key] = [float(v) for v in values]
    return entry


def routing_entry(flow: nn.Module) -> dict[str, Any]:
    """Routing description read from the MoE layers actually present in the model."""
    layers = find_moe_layers(flow)
    if not layers:
        return {'mode': 'dense', 'layer_indices': [], 'num_experts': 0, 'top_k': 0, 'shared_expert': False}
    modules = [m for _, m in layers]
    modes = {m.routing_mode for m in modules}
    if len(modes) != 1 or len({(m.num_experts, m.top_k) for m in modules}) != 1:
        raise ValueError('MoE layers disagree on routing mode / experts / top_k; the bundle format needs one')
    return {
        'mode': modes.pop(),
        'layer_indices': [i for i, _ in layers],
        'num_experts': modules[0].num_experts,
        'top_k': modules[0].top_k,
        'shared_expert': hasattr(modules[0], 'shared_expert'),
    }


def image_preprocessing_entry(config: Any, family: str) -> dict[str, Any]:
    """How the policy turns a [0, 1] camera image into its model input (LeRobot's own resize, then x2-1)."""
    if family == fmt.SMOLVLA:
        model_w, model_h = config.resize_imgs_with_padding  # SmolVLA stores (width, height)
        resize, padding = _SMOLVLA_RESIZE
    else:
        model_h, model_w = config.image_resolution  # PI's `_preprocess_images` target, (height, width)
        resize, padding = _PI_RESIZE
    return {
        'resize': resize,
        'model_height': model_h,
        'model_width': model_w,
        'pad_value': 0.0,
        'padding': padding,
        'input_range': [0.0, 1.0],
        'model_range': [-1.0, 1.0],
    }


def tensor_entry(array: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """Describe a graph tensor's static shape and dtype for bundle.json."""
    dtype = str(array.dtype).replace('torch.', '')
    return {'shape': list(array.shape), 'dtype': dtype}


def build_metadata(
    policy: nn.Module,
    names: DatasetNames,
    normalization: dict[str, dict[str, Any]],
    tokenizer: dict[str, Any],
    graphs: dict[str, Any],
    source: dict[str, Any],
    precision: str,
) -> dict[str, Any]:
    """Assemble bundle.json (without bundle_id, which is added once the files are written)."""
    config = policy.config
    cams = []
    for cam in camera_names(config):
        channels, height, width = config.image_features[IMAGE_PREFIX + cam].shape
        cams.append(
            {
                'name': cam,
                'height': height,
                'width': width,
                'channels': channels,
                'channel_order': 'RGB',
                'dtype': 'uint8',
            }
        )
    state_dim = config.robot_state_feature.shape[0]
    action_dim = config.action_feature.shape[0]
    if len(names.state_names) != state_dim or len(names.joint_names) != action_dim:
        raise ValueError(
            f'names do not fit the policy: {len(names.state_names)} state names for state dim {state_dim}, '
            f'{len(names.joint_names)} joint names for action dim {action_dim}'
        )
    family = model_family(policy.model)
    return {
        'format_version': fmt.FORMAT_VERSION,
        'model_family': family,
        'bundle_id': '',
        'cameras': cams,
        'image_preprocessing': image_preprocessing_entry(config, family),
        'state_names': list(names.state_names),
        'joint_names': list(names.joint_names),
        'state_dim': state_dim,
        'action_dim': action_dim,
        'max_state_dim': config.max_state_dim,
        'max_action_dim': config.max_action_dim,
        'fps': float(names.fps),
        'dt': 1.0 / float(names.fps),
        'horizon': config.chunk_size,
        'num_flow_steps': config.num_steps if family == fmt.SMOLVLA else config.num_inference_steps,
        'flow': {'time_start': 1.0, 'time_end': 0.0, 'step': 'x += dt * v, dt = -1/num_flow_steps'},
        'normalization': normalization,
        'tokenizer': tokenizer,
        'routing': routing_entry(policy.model),
        'graphs': graphs,
        'precision': precision,
        'source': {
            **source,
            'policy_type': config.type,
            'torch_version': torch.__version__,
            'lerobot_version': lerobot.__version__,
            'exported_at': datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'),
        },
    }
