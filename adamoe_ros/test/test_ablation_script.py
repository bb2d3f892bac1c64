"""scripts/ablation.py: recipes guard resumed stages; the cameras-only dataset is the same demonstrations' joints."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'ablation.py'


def load_script():
    spec = importlib.util.spec_from_file_location('ablation_script', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('recorded', [None, ['--steps', '20000']])
def test_checkpoints_of_another_recipe_are_refused_and_kept(tmp_path: Path, recorded: list[str] | None) -> None:
    ablation = load_script()
    out = tmp_path / 'pretrain'
    checkpoint = out / 'checkpoints' / 'last' / 'pretrained_model'
    checkpoint.mkdir(parents=True)
    (checkpoint / 'config.json').write_text('{}')
    if recorded is not None:
        (out / 'recipe.json').write_text(json.dumps(recorded))
    args = argparse.Namespace(batch_size=16, save_every=500)
    with pytest.raises(RuntimeError, match='holds checkpoints of another recipe; delete it'):
        ablation.train(out, tmp_path / 'dataset', 40000, 0, 1, 20.0, ['--routing-mode', 'dense'], args)
    assert (checkpoint / 'config.json').exists()  # nothing was overwritten or trained
    assert recorded is None or json.loads((out / 'recipe.json').read_text()) == recorded


def make_dataset(root: Path, state_names: list[str]):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        'observation.state': {'dtype': 'float32', 'shape': (len(state_names),), 'names': state_names},
        'action': {'dtype': 'float32', 'shape': (6,), 'names': state_names[:6]},
    }
    dataset = LeRobotDataset.create('local/joints_only', fps=10, features=features, root=root, use_videos=False)
    rng = np.random.default_rng(0)
    for _ in range(2):
        for _ in range(5):
            dataset.add_frame(
                {
                    'observation.state': rng.normal(size=len(state_names)).astype(np.float32),
                    'action': rng.normal(size=6).astype(np.float32),
                    'task': 'put the red cube on the green target',
                }
            )
        dataset.save_episode()
    dataset.finalize()
    return dataset


def test_the_cameras_only_dataset_keeps_the_joints_of_the_same_demonstrations(tmp_path: Path) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from adamoe_ros.sim.robot import SO101
    from adamoe_ros.sim.tasks import MULTITASK

    ablation = load_script()
    joints = list(SO101.joint_names)
    source = make_dataset(tmp_path / 'source', [*joints, *MULTITASK.state_names])
    out = ablation.joints_only(source.root, tmp_path / 'joints_only')
    derived = LeRobotDataset('local/joints_only', root=out)
    assert derived.meta.features['observation.state']['names'] == joints
    assert len(derived) == len(source)
    for i in range(len(source)):
        assert torch.equal(derived[i]['observation.state'], source[i]['observation.state'][: len(joints)])
        assert torch.equal(derived[i]['action'], source[i]['action'])
    for name, value in derived.meta.stats['observation.state'].items():
        expected = source.meta.stats['observation.state'][name]
        np.testing.assert_array_equal(value, expected if name == 'count' else expected[: len(joints)])
    import pyarrow.parquet as pq

    (episodes,) = (out / 'meta' / 'episodes').glob('*/*.parquet')
    assert {len(mean) for mean in pq.read_table(episodes)['stats/observation.state/mean'].to_pylist()} == {len(joints)}
    assert ablation.joints_only(source.root, out) == out  # done: kept as it is


def test_a_state_not_led_by_the_joints_is_refused(tmp_path: Path) -> None:
    ablation = load_script()
    source = make_dataset(tmp_path / 'source', [f'x{i}' for i in range(9)])
    with pytest.raises(ValueError, match='does not begin with the joints'):
        ablation.joints_only(source.root, tmp_path / 'joints_only')


def test_stage_a_takes_the_text_encoder_and_the_base_model_fields(tmp_path: Path) -> None:
    from lerobot_policy_adamoe.train import TrainOptions, build_config, build_parser

    ablation = load_script()
    args = argparse.Namespace(text_encoder='all-MiniLM-L6-v2', base_model=['expert_width_multiplier=2.0'])
    # fmt: off
    parsed = build_parser().parse_args(['--dataset-root', str(tmp_path), '--repo-id', 'local/x', '--output-dir',
                                        str(tmp_path / 'out'), *ablation.dense_base(args)])
    # fmt: on
    config = build_config(TrainOptions(**{**vars(parsed), 'overrides': dict(parsed.overrides)}))
    assert (config.text_encoder, config.expert_width_multiplier, config.routing_mode) == (
        'all-MiniLM-L6-v2',
        2.0,
        'dense',
    )
    args.text_encoder = None
    assert '--text-encoder' not in ablation.dense_base(args)


def test_an_unknown_text_encoder_is_refused_before_anything_runs(tmp_path: Path) -> None:
    import subprocess

    # fmt: off
    proc = subprocess.run([sys.executable, str(SCRIPT), '--text-encoder', 'bert-large', '--work', str(tmp_path / 'w'),
                           '--results', str(tmp_path / 'r')], capture_output=True, text=True)
    # fmt: on
    assert proc.returncode == 2
    assert "--text-encoder: invalid choice: 'bert-large'" in proc.stderr
    assert not (tmp_path / 'w').exists() and not (tmp_path / 'r').exists()
