"""The whole closed loop, small: scripted demos recorded through ROS, a few training steps, export, and a short
sim-in-the-loop rollout in which the policy node drives the sim bridge over real topics."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from adamoe_contract.spec import load_spec
from adamoe_ros.closed_loop.collect import collect
from adamoe_ros.closed_loop.report import contact_sheet, episode_table, plot_expert_usage, summarize, write_json
from adamoe_ros.closed_loop.ros_eval import RosEvalConfig, evaluate_over_ros

REPO_ID = 'local/so101_demos'


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{cmd[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_record_train_export_and_deploy_in_sim(tmp_path):
    # 1. Demonstrations through ROS: sim bridge + scripted expert + recorder, saved only when the physics says so.
    dataset = tmp_path / 'dataset'
    counts = collect(dataset, episodes=2, first_seed=0, real_time_factor=1.5, repo_id=REPO_ID, max_attempts_factor=2.0)
    assert counts['saved'] == 2, counts
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset(REPO_ID, root=dataset, video_backend='pyav')
    assert ds.num_episodes == 2 and ds.num_frames > 100  # ~9 s of sim per episode at 10 fps
    assert counts['frames'] == ds.num_frames, counts  # what collect reports is what the dataset holds
    assert ds.features['observation.state']['names'][-3:] == ['cube_x', 'cube_y', 'cube_z']

    # 2-3. A few training steps, then the bundle (export validates ORT against PyTorch itself).
    train = tmp_path / 'train'
    run(
        [
            shutil.which('adamoe-train'),
            '--dataset-root',
            str(dataset),
            '--repo-id',
            REPO_ID,
            '--output-dir',
            str(train),
            '--steps',
            '4',
            '--batch-size',
            '4',
            '--log-every',
            '2',
            '--threads',
            '1',
        ],
        tmp_path,
    )
    bundle = tmp_path / 'bundle'
    out = run(
        [
            shutil.which('adamoe-export'),
            str(train / 'checkpoints' / 'last' / 'pretrained_model'),
            str(bundle),
            '--dataset-root',
            str(dataset),
            '--validate-cases',
            '1',
        ],
        tmp_path,
    )
    assert 'OK' in out
    spec = load_spec(bundle)
    assert spec.joint_names[:6] == spec.state_names[:6] and spec.routing.mode == 'adamoe'

    # 4. Sim-in-the-loop over ROS topics; success is computed by the sim (an untrained policy will not succeed).
    episodes = evaluate_over_ros(
        RosEvalConfig(bundle=bundle, episodes=1, first_seed=1000, max_time=3.0, frame_every=0.5), log=print
    )
    (episode,) = episodes
    assert episode.chunks >= 2 and episode.commands >= 10, (episode.chunks, episode.commands)
    assert not episode.success and episode.episode_time == pytest.approx(3.0, abs=0.5)
    assert episode.routing and np.allclose(episode.routing[0].token_fraction.sum(axis=1), spec.routing.top_k)
    summary = summarize(episodes, spec.routing.top_k)
    write_json(tmp_path / 'eval' / 'results.json', {'summary': summary, 'episodes': episode_table(episodes)})
    assert contact_sheet(episodes, tmp_path / 'eval' / 'sheet.png').stat().st_size > 0
    assert plot_expert_usage(episodes, tmp_path / 'eval' / 'usage.png').stat().st_size > 0
    results = json.loads((tmp_path / 'eval' / 'results.json').read_text())
    assert results['summary']['episodes'] == 1 and results['summary']['inference']['count'] == episode.chunks
