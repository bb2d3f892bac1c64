"""adamoe-train: JSONL log with losses and expert usage, LeRobot checkpoints, resume, upcycling, bad input."""

import json

import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
from lerobot.policies.factory import make_policy

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig
from lerobot_policy_adamoe.decoded_dataset import CACHE_DIR
from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy
from lerobot_policy_adamoe.testing import TASKS
from lerobot_policy_adamoe.tiny_base import make_tiny_smolvla_config
from lerobot_policy_adamoe.train import main


def common_args(ds, out, backbone):
    return [
        '--dataset-root',
        str(ds.root),
        '--repo-id',
        ds.repo_id,
        '--output-dir',
        str(out),
        '--backbone',
        str(backbone),
        '--batch-size',
        '4',
        '--threads',
        '1',
        '--lr-scale',
        '40',
    ]


def test_train_logs_checkpoints_and_resumes(tiny_backbone, synthetic_dataset, tmp_path):
    out = tmp_path / 'run'
    args = common_args(synthetic_dataset, out, tiny_backbone)
    assert main([*args, '--steps', '6', '--top-k', '2', '--log-every', '3', '--save-every', '3']) == 0
    records = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert [r['step'] for r in records] == [3, 6]
    last = records[-1]
    assert {'loss', 'flow_loss', 'balance_loss', 'z_loss', 'grad_norm'} <= set(last)
    assert set(last['lr']) == {'base', 'experts', 'router'}
    fractions = torch.tensor(last['routing']['token_fraction'])
    assert fractions.shape == (2, 4)
    torch.testing.assert_close(fractions.sum(1), torch.full((2,), 2.0), atol=1e-3, rtol=0)
    assert (out / 'checkpoints' / 'last').resolve().name == '000006'
    policy = AdaMoEPolicy.from_pretrained(out / 'checkpoints' / 'last' / 'pretrained_model')
    assert policy.config.top_k == 2 and int(policy.moe_train_step) == 6

    with pytest.raises(FileExistsError, match='--resume'):
        main([*args, '--steps', '8'])
    assert sorted(d.name for d in (out / 'checkpoints').iterdir()) == ['000003', '000006', 'last']
    assert (
        main([*args, '--steps', '10', '--resume', '--log-every', '2', '--save-every', '2', '--keep-checkpoints', '2'])
        == 0
    )
    records = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert records[-1]['step'] == 10
    # Only the newest two of 000003, 000006, 000008, 000010 stay; `last` names the newest.
    assert sorted(d.name for d in (out / 'checkpoints').iterdir()) == ['000008', '000010', 'last']
    resumed = AdaMoEPolicy.from_pretrained(out / 'checkpoints' / 'last' / 'pretrained_model')
    assert int(resumed.moe_train_step) == 10


def test_train_upcycles_from_dense_checkpoint(tiny_backbone, synthetic_dataset, tmp_path):
    dense = make_policy(
        make_tiny_smolvla_config(tiny_backbone, chunk_size=8, n_action_steps=8), ds_meta=synthetic_dataset.meta
    )
    dense.save_pretrained(tmp_path / 'dense')
    out = tmp_path / 'up'
    args = common_args(synthetic_dataset, out, tiny_backbone)
    assert (
        main(
            [
                *args,
                '--steps',
                '2',
                '--upcycle-from',
                str(tmp_path / 'dense'),
                '--routing-mode',
                'vanilla',
                '--set',
                'balance_loss_coef=0.02',
            ]
        )
        == 0
    )
    policy = AdaMoEPolicy.from_pretrained(out / 'checkpoints' / 'last' / 'pretrained_model')
    assert policy.config.chunk_size == 8  # base fields come from the dense checkpoint
    assert policy.config.routing_mode == 'vanilla' and policy.config.balance_loss_coef == 0.02
    assert policy.config.upcycle_from == str(tmp_path / 'dense')


def test_upcycled_run_takes_its_own_recipe_not_the_bases(tiny_backbone, synthetic_dataset, tmp_path):
    # An AdaMoE dense base stores its learning rates already multiplied by its --lr-scale: copied into the
    # upcycled run, they were multiplied again (x400 the reference at scale 20).
    base = common_args(synthetic_dataset, tmp_path / 'dense', tiny_backbone)
    assert main([*base, '--steps', '1', '--routing-mode', 'dense', '--set', 'expert_width_multiplier=1.5']) == 0
    dense = tmp_path / 'dense' / 'checkpoints' / 'last' / 'pretrained_model'
    up = common_args(synthetic_dataset, tmp_path / 'up', tiny_backbone)
    assert main([*up, '--steps', '1', '--upcycle-from', str(dense), '--routing-mode', 'adamoe']) == 0
    policy = AdaMoEPolicy.from_pretrained(tmp_path / 'up' / 'checkpoints' / 'last' / 'pretrained_model')
    reference = AdaMoEConfig.__dataclass_fields__
    for group in ('base', 'experts', 'router'):
        assert getattr(policy.config, f'{group}_lr') == pytest.approx(reference[f'{group}_lr'].default * 40)
    assert policy.config.expert_width_multiplier == 1.5  # the architecture does carry over


def test_train_rejects_bad_input(tiny_backbone, synthetic_dataset, tmp_path):
    args = common_args(synthetic_dataset, tmp_path / 'bad', tiny_backbone)
    with pytest.raises(ValueError, match="no field 'not_a_field'"):
        main([*args, '--steps', '1', '--set', 'not_a_field=1'])
    with pytest.raises(SystemExit):
        main([*args, '--steps', '0'])
    with pytest.raises(FileNotFoundError, match='--resume'):
        main([*common_args(synthetic_dataset, tmp_path / 'none', tiny_backbone), '--resume'])
    with pytest.raises(ValueError, match=r"--tasks \['fly to the moon'\]: not tasks of this dataset"):
        main([*args, '--steps', '1', '--tasks', TASKS[0], 'fly to the moon'])


def test_train_on_the_episodes_of_some_tasks(tiny_backbone, synthetic_dataset, tmp_path, caplog):
    caplog.set_level('INFO', logger='adamoe-train')
    args = common_args(synthetic_dataset, tmp_path / 'one_task', tiny_backbone)
    assert main([*args, '--steps', '1', '--tasks', TASKS[1]]) == 0
    episodes = LeRobotDatasetMetadata(synthetic_dataset.repo_id, root=synthetic_dataset.root).episodes
    assert episodes[1]['tasks'] == [TASKS[1]] != episodes[0]['tasks']
    length = episodes[1]['length']
    assert f'training on 1 of 2 episodes ({length} frames)' in caplog.text


def test_decoding_once_trains_on_the_same_batches(tiny_backbone, tmp_path):
    from lerobot_policy_adamoe.testing import make_synthetic_dataset

    videos = make_synthetic_dataset(tmp_path / 'videos', num_episodes=2, frames_per_episode=12, image_dtype='video')
    losses = {}
    for flags in ([], ['--decode-once']):
        out = tmp_path / f'run{len(flags)}'
        assert main([*common_args(videos, out, tiny_backbone), '--steps', '3', '--log-every', '1', *flags]) == 0
        losses[tuple(flags)] = [json.loads(line)['loss'] for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert losses[()] == losses[('--decode-once',)]
    assert (videos.root / CACHE_DIR).is_dir()
