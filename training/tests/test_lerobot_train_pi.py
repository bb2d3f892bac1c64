"""`lerobot-train --policy.type=adamoe_pi0|adamoe_pi05` end to end at the tiny size, offline; then resume."""

import pytest

from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy, AdaMoEPI05Policy
from lerobot_policy_adamoe.testing import lerobot_train_and_resume
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
    policy_args = [
        f'--policy.type=adamoe_{kind}',
        *policy_flags(**tiny_pi_kwargs(), tiny_test_model=True, tokenizer_name=tiny_backbone, top_k=2),
    ]
    config, resumed = lerobot_train_and_resume(policy_args, synthetic_dataset, tmp_path)
    assert config['type'] == f'adamoe_{kind}' and config['top_k'] == 2 and config['tiny_test_model']
    assert len(policy_class.from_pretrained(resumed).moe_modules) == 2
