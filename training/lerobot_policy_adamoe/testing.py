"""Small synthetic LeRobot datasets for tests and examples (the SO-101 profile's cameras and joints).

Also `train_steps`, a few optimizer steps the way adamoe-train takes them, and `run_lerobot_train` /
`lerobot_train_and_resume`, which the end-to-end tests use to run LeRobot's own CLI offline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from adamoe_contract.robots import load_robot_profile

SO101 = load_robot_profile('so101')
JOINTS = SO101.joint_names
CAMERAS = SO101.camera_names  # the first sees the scene, the others a shifted copy of it
TASKS = ('pick up the red cube', 'push the block to the left')


def synthetic_features(image_hw: tuple[int, int] = (96, 128), image_dtype: str = 'image') -> dict[str, dict]:
    """LeRobot feature spec of the synthetic dataset."""
    cam = {'dtype': image_dtype, 'shape': (*image_hw, 3), 'names': ['height', 'width', 'channels']}
    vec = {'dtype': 'float32', 'shape': (len(JOINTS),), 'names': list(JOINTS)}
    return {
        **{f'observation.images.{name}': dict(cam) for name in CAMERAS},
        'observation.state': vec,
        'action': dict(vec),
    }


def make_synthetic_dataset(
    root: Path,
    repo_id: str = 'local/adamoe_synthetic',
    *,
    num_episodes: int = 2,
    frames_per_episode: int = 30,
    image_hw: tuple[int, int] = (96, 128),
    fps: int = 10,
    image_dtype: str = 'image',
    seed: int = 0,
):
    """Create and finalize a LeRobotDataset whose action is a smooth, learnable function of time and task."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    rng = np.random.default_rng(seed)
    dataset = LeRobotDataset.create(
        repo_id,
        fps=fps,
        features=synthetic_features(image_hw, image_dtype),
        root=root,
        robot_type='so101',
        use_videos=image_dtype == 'video',
    )
    h, w = image_hw
    yy, xx = np.mgrid[0:h, 0:w]
    try:
        for episode in range(num_episodes):
            task_id = episode % len(TASKS)
            phase = rng.uniform(0, np.pi)
            for t in range(frames_per_episode):
                angle = phase + 0.2 * t
                state = (0.5 * np.sin(angle + np.arange(len(JOINTS)))).astype(np.float32)
                action = 0.5 * np.sin(angle + 0.2 + np.arange(len(JOINTS))) * (1 if task_id == 0 else -1)
                # A bright blob that moves with the state, so images carry information.
                cy, cx = int(h / 2 + h / 4 * state[0]), int(w / 2 + w / 4 * state[1])
                blob = (((yy - cy) ** 2 + (xx - cx) ** 2) < (h // 8) ** 2).astype(np.uint8) * 200
                scene = np.stack([blob, np.full_like(blob, 40 * task_id), 255 - blob], axis=-1)
                dataset.add_frame(
                    {
                        **{
                            f'observation.images.{name}': np.roll(scene, shift=i * w // 4, axis=1)
                            for i, name in enumerate(CAMERAS)
                        },
                        'observation.state': state,
                        'action': action.astype(np.float32),
                        'task': TASKS[task_id],
                    }
                )
            dataset.save_episode()
    finally:
        dataset.finalize()
    return dataset


def run_lerobot_train(*args: str, cwd: Path) -> str:
    """Run `lerobot-train` of this venv offline with one thread; return its output, or raise if it failed."""
    exe = Path(sys.executable).with_name('lerobot-train')
    env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    result = subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f'lerobot-train exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}')
    return result.stdout + result.stderr


def lerobot_train_and_resume(policy_args: list[str], dataset: Any, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """Train 4 steps with `lerobot-train` (checkpoint at 4), resume to 6; check what both runs must leave behind.

    Returns the first checkpoint's config.json and the resumed `pretrained_model` folder.
    """
    from safetensors.torch import load_file

    out = tmp_path / 'run'
    log = run_lerobot_train(
        f'--dataset.repo_id={dataset.repo_id}',
        f'--dataset.root={dataset.root}',
        *policy_args,
        '--steps=4',
        '--batch_size=2',
        '--num_workers=0',
        '--wandb.enable=false',
        f'--output_dir={out}',
        '--save_freq=4',
        '--log_freq=2',
        cwd=tmp_path,
    )
    assert 'balance_loss:' in log and 'expert0_share:' in log and 'flow_loss:' in log
    ckpt = out / 'checkpoints' / '000004'
    config = json.loads((ckpt / 'pretrained_model' / 'config.json').read_text())
    groups = json.loads((ckpt / 'training_state' / 'optimizer_param_groups.json').read_text())
    assert [g['group_name'] for g in groups] == ['base', 'experts', 'router']
    run_lerobot_train(
        '--resume=true',
        f'--config_path={out}/checkpoints/last/pretrained_model/train_config.json',
        '--steps=6',
        '--save_freq=6',
        cwd=tmp_path,
    )
    resumed = out / 'checkpoints' / '000006' / 'pretrained_model'
    assert int(load_file(str(resumed / 'model.safetensors'))['moe_train_step']) == 6
    return config, resumed


def train_steps(policy: Any, preprocessor: Any, dataset: Any, optimizer: Any, steps: int) -> list[dict[str, Any]]:
    """Take `steps` optimizer steps (batch 8, clipped gradients, the config's scheduler); return each step's info."""
    import torch

    scheduler = policy.config.get_scheduler_preset().build(optimizer, num_training_steps=1000)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=8, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(0)
    )
    policy.train()
    logged: list[dict[str, Any]] = []
    while len(logged) < steps:
        for raw in loader:
            loss, info = policy.forward(preprocessor(raw))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            logged.append(info)
            if len(logged) == steps:
                break
    return logged


def load_benchmark(name: str) -> Any:
    """Import training/benchmarks/<name>.py (scripts, not a package) as a module for its tests."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / 'benchmarks' / f'{name}.py'
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
