"""`lerobot-train --policy.type=adamoe` end to end, offline, on the synthetic dataset; then resume."""

import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file

from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy
from lerobot_policy_adamoe.testing import run_lerobot_train as lerobot_train


def test_lerobot_train_adamoe_end_to_end_and_resume(tiny_backbone, synthetic_dataset, tmp_path):
    assert shutil.which('lerobot-train') or Path(sys.executable).with_name('lerobot-train').exists()
    out = tmp_path / 'run'
    log = lerobot_train(
        f'--dataset.repo_id={synthetic_dataset.repo_id}',
        f'--dataset.root={synthetic_dataset.root}',
        '--policy.type=adamoe',
        f'--policy.vlm_model_name={tiny_backbone}',
        '--policy.load_vlm_weights=false',
        '--policy.device=cpu',
        '--policy.resize_imgs_with_padding=[128,128]',
        '--policy.chunk_size=16',
        '--policy.n_action_steps=16',
        '--policy.num_vlm_layers=2',
        '--policy.tokenizer_max_length=24',
        '--policy.push_to_hub=false',
        '--policy.top_k=2',
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
    assert config['type'] == 'adamoe' and config['top_k'] == 2
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
    policy = AdaMoEPolicy.from_pretrained(resumed)
    assert len(policy.moe_modules) == 2
