"""`lerobot-train --policy.type=adamoe` end to end, offline, on the synthetic dataset; then resume."""

import shutil
import sys
from pathlib import Path

from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy
from lerobot_policy_adamoe.testing import lerobot_train_and_resume


def test_lerobot_train_adamoe_end_to_end_and_resume(tiny_backbone, synthetic_dataset, tmp_path):
    assert shutil.which('lerobot-train') or Path(sys.executable).with_name('lerobot-train').exists()
    policy_args = [
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
    ]
    config, resumed = lerobot_train_and_resume(policy_args, synthetic_dataset, tmp_path)
    assert config['type'] == 'adamoe' and config['top_k'] == 2
    assert len(AdaMoEPolicy.from_pretrained(resumed).moe_modules) == 2
