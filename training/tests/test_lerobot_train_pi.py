"""`lerobot-train --policy.type=adamoe_pi0|adamoe_pi05` end to end at the tiny size, offline; then resume."""

import json

import pytest
from safetensors.torch import load_file

from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy, AdaMoEPI05Policy
from lerobot_policy_adamoe.testing import run_lerobot_train as lerobot_train
from lerobot_policy_adamoe.tiny_pi import tiny_pi_kwargs


def policy_flags(**fields):
    def cli(value):
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return '[' + ','.join(str(v) for v in value) + ']'
        return str(value)

    return [f'--policy.{key}={cli(value)}' for key, value in fields.items()]


@pytest.mark.parametrize(('kind', 'policy_class'), [('pi0', AdaMoEPI0Policy), ('pi05', AdaMoEPI05Policy)])
def test_lerobot_train_adamoe_pi_end_to_end_and_resume(kind, policy_class, tiny_backbone, synthetic_dataset, tmp_path):
    out = tmp_path / 'run'
    log = lerobot_train(
        f'--dataset.repo_id={synthetic_dataset.repo_id}',
        f'--dataset.root={synthetic_dataset.root}',
        f'--policy.type=adamoe_{kind}',
        *policy_flags(**tiny_pi_kwargs(), tiny_test_model=True, tokenizer_name=tiny_backbone, top_k=2),
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
    assert config['type'] == f'adamoe_{kind}' and config['top_k'] == 2 and config['tiny_test_model']
    groups = json.loads((ckpt / 'training_state' / 'optimizer_param_groups.json').read_text())
    assert [g['group_name'] for g in groups] == ['base', 'experts', 'router']

    lerobot_train(
        '--resume=true',
        f'--config_path={out}/checkpoints/last/pretrained_model/train_config.json',
        '--steps=6',
        '--save_freq=6',
        cwd=tmp_path,
    )
    resumed = out / 'checkpoints' / '000006' / 'pretrained_model'
    assert int(load_file(str(resumed / 'model.safetensors'))['moe_train_step']) == 6
    policy = policy_class.from_pretrained(resumed)
    assert len(policy.moe_modules) == 2
