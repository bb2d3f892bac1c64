"""Loads a LeRobot `pretrained_model` folder: policy, processors, dataset stats and the dataset's names."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lerobot_policy_adamoe.export.metadata import DatasetNames


@dataclass
class LoadedCheckpoint:
    """A policy with the exact pre/post-processors and normalisation stats it was trained with."""

    path: Path
    policy: nn.Module
    preprocessor: Any
    postprocessor: Any
    stats: dict[str, dict[str, Any]]
    eps: float


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Load policy + processors from a checkpoint folder (model.safetensors, config.json, processor files)."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    from lerobot.processor.normalize_processor import NormalizerProcessorStep

    import lerobot_policy_adamoe  # noqa: F401 (registers --policy.type=adamoe)

    path = Path(path)
    if not (path / 'config.json').is_file():
        raise FileNotFoundError(f'{path}: not a LeRobot pretrained_model folder (no config.json)')
    config = PreTrainedConfig.from_pretrained(str(path))
    config.device = 'cpu'
    policy = get_policy_class(config.type).from_pretrained(str(path), config=config).eval()
    preprocessor, postprocessor = make_pre_post_processors(config, pretrained_path=str(path))
    normalizers = [s for s in preprocessor.steps if isinstance(s, NormalizerProcessorStep)]
    if not normalizers:
        raise ValueError(f'{path}: preprocessor has no normaliser step, cannot read dataset stats')
    return LoadedCheckpoint(path, policy, preprocessor, postprocessor, dict(normalizers[0].stats), normalizers[0].eps)


def _names_of(feature: dict[str, Any]) -> list[str]:
    names = feature.get('names')
    if isinstance(names, dict):  # some datasets nest them, e.g. {"motors": [...]}
        names = next(iter(names.values()))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f'dataset feature has no usable names: {feature.get("names")!r}')
    return names


def dataset_names_from_root(root: Path) -> DatasetNames:
    """State/action names and fps from a LeRobot dataset's meta/info.json."""
    info_file = Path(root) / 'meta' / 'info.json'
    info = json.loads(info_file.read_text())
    features = info['features']
    return DatasetNames(
        state_names=_names_of(features['observation.state']),
        joint_names=_names_of(features['action']),
        fps=float(info['fps']),
    )


def dataset_root_from_checkpoint(path: Path) -> Path | None:
    """Find the training dataset's root recorded by lerobot-train in train_config.json, if any."""
    train_config = Path(path) / 'train_config.json'
    if not train_config.is_file():
        return None
    dataset = json.loads(train_config.read_text()).get('dataset', {})
    if dataset.get('root'):
        return Path(dataset['root'])
    if dataset.get('repo_id'):
        home = Path(os.environ.get('HF_LEROBOT_HOME', Path.home() / '.cache' / 'huggingface' / 'lerobot'))
        return home / dataset['repo_id']
    return None
