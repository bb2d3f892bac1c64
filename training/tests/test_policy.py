"""AdaMoE-SmolVLA policy: plugin registration, upcycling from a dense checkpoint, optimizer groups,
a short training run on a synthetic LeRobot dataset, and checkpoint round trip."""

import importlib.metadata

import pytest
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.policies.factory import get_policy_class, make_policy, make_pre_post_processors
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.utils.import_utils import register_third_party_plugins

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig
from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy, param_group_of, smolvla_expert_layers
from lerobot_policy_adamoe.moe import AdaMoEFeedForward, capture_routing, expected_upcycled_factor
from lerobot_policy_adamoe.testing import train_steps
from lerobot_policy_adamoe.tiny_base import make_tiny_adamoe_config, make_tiny_smolvla_config


def dataset_for(config, synthetic_dataset):
    fps = synthetic_dataset.meta.fps
    return LeRobotDataset(
        synthetic_dataset.repo_id,
        root=synthetic_dataset.root,
        delta_timestamps={'action': [i / fps for i in range(config.chunk_size)]},
    )


def first_batch(config, dataset, batch_size=4, seed=0):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return next(iter(loader))


def test_plugin_is_discovered_by_lerobot():
    assert importlib.metadata.distribution('lerobot_policy_adamoe').metadata['Name'] == 'lerobot_policy_adamoe'
    register_third_party_plugins()
    assert 'adamoe' in PreTrainedConfig.get_known_choices()
    assert get_policy_class('adamoe') is AdaMoEPolicy


def test_config_rejects_bad_values(tiny_backbone):
    with pytest.raises(ValueError, match='top_k'):
        make_tiny_adamoe_config(tiny_backbone, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match='routing_mode'):
        make_tiny_adamoe_config(tiny_backbone, routing_mode='csmoe')
    with pytest.raises(NotImplementedError, match='pi0'):
        make_tiny_adamoe_config(tiny_backbone, base='pi0')


def test_balance_coefficient_schedule(tiny_backbone):
    config = make_tiny_adamoe_config(tiny_backbone)
    assert [config.balance_coef(s) for s in (0, 499, 500, 10_000)] == [0.01, 0.01, 0.005, 0.005]


def test_upcycling_from_a_dense_adamoe_checkpoint(tiny_backbone, synthetic_dataset, tmp_path):
    # The ablation's stage A trains `adamoe` with routing_mode='dense' and upcycles its checkpoint in stage B.
    torch.manual_seed(0)
    dense = make_policy(make_tiny_adamoe_config(tiny_backbone, routing_mode='dense'), ds_meta=synthetic_dataset.meta)
    dense.moe_train_step.fill_(123)  # trained for a while
    dense.save_pretrained(tmp_path / 'dense')
    for routing_mode in ('adamoe', 'dense'):  # upcycled, or the dense variant fine-tuned from the same checkpoint
        config = make_tiny_adamoe_config(tiny_backbone, upcycle_from=str(tmp_path / 'dense'), routing_mode=routing_mode)
        policy = make_policy(config, ds_meta=synthetic_dataset.meta)
        state = policy.state_dict()
        for key, value in dense.state_dict().items():
            if key != 'moe_train_step':
                assert torch.equal(state[key], value), key
        assert int(policy.moe_train_step) == 0  # its own balance-loss schedule starts at the beginning
        assert len(policy.moe_modules) == (0 if routing_mode == 'dense' else len(smolvla_expert_layers(policy)))


def test_upcycling_from_dense_checkpoint(tiny_backbone, synthetic_dataset, tmp_path):
    torch.manual_seed(0)
    dense_cfg = make_tiny_smolvla_config(tiny_backbone)
    dense = make_policy(dense_cfg, ds_meta=synthetic_dataset.meta)
    dense.save_pretrained(tmp_path / 'dense')
    dense_state = {k: v.clone() for k, v in dense.state_dict().items()}

    config = make_tiny_adamoe_config(tiny_backbone, upcycle_from=str(tmp_path / 'dense'), top_k=2)
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    state = policy.state_dict()
    # every base weight unchanged (shared expert keeps the dense FFN's names)
    for key, value in dense_state.items():
        assert torch.equal(state[key], value), key
    moe = [layer.mlp for layer in smolvla_expert_layers(policy)]
    assert all(isinstance(m, AdaMoEFeedForward) for m in moe)
    dense_mlp = smolvla_expert_layers(dense)[0].mlp
    for e in range(config.num_experts):
        assert torch.equal(moe[0].experts_gate[e], dense_mlp.gate_proj.weight.t())
        assert torch.equal(moe[0].experts_down[e], dense_mlp.down_proj.weight.t())
    gates = torch.cat([m.router.weight.flatten() for m in moe] + [m.scale_adapter.weight.flatten() for m in moe])
    assert abs(gates.std().item() - 0.006) < 0.002 and abs(gates.mean().item()) < 0.002

    # with noise_std 0 each layer outputs (0.5 + 0.5 * sum of selected weights) * dense FFN, token by token
    x = torch.randn(2, 16, moe[0].hidden_size)
    out, info = moe[0].forward_with_routing(x)
    factor = expected_upcycled_factor(info).reshape(2, 16, 1)
    torch.testing.assert_close(out, factor * dense_mlp(x), atol=1e-6, rtol=1e-5)

    with pytest.raises(FileNotFoundError, match='model.safetensors'):
        AdaMoEPolicy(
            make_tiny_adamoe_config(
                tiny_backbone,
                upcycle_from=str(tmp_path / 'missing'),
                input_features=dense_cfg.input_features,
                output_features=dense_cfg.output_features,
            )
        )


def test_function_preserving_init_matches_dense_policy(tiny_backbone, synthetic_dataset, tmp_path):
    torch.manual_seed(1)
    dense = make_policy(make_tiny_smolvla_config(tiny_backbone), ds_meta=synthetic_dataset.meta)
    dense.save_pretrained(tmp_path / 'dense')
    config = make_tiny_adamoe_config(tiny_backbone, upcycle_from=str(tmp_path / 'dense'), function_preserving_init=True)
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    preprocessor, _ = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    batch = preprocessor(first_batch(config, dataset_for(config, synthetic_dataset)))
    noise = torch.randn(4, config.chunk_size, config.max_action_dim)
    time = torch.full((4,), 0.5)
    dense_loss, _ = SmolVLAPolicy.forward(dense, dict(batch), noise=noise, time=time)
    _, info = policy.forward(dict(batch), noise=noise, time=time)
    assert info['flow_loss'] == pytest.approx(dense_loss.item(), rel=1e-5)


def test_optimizer_groups_and_schedules(tiny_backbone, synthetic_dataset):
    config = make_tiny_adamoe_config(tiny_backbone)
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    groups = {g['group_name']: g for g in policy.get_optim_params()}
    assert set(groups) == {'base', 'experts', 'router'}
    names = {id(p): n for n, p in policy.named_parameters()}
    assert all('router' in names[id(p)] or 'scale_adapter' in names[id(p)] for p in groups['router']['params'])
    assert all('.experts_' in names[id(p)] for p in groups['experts']['params'])
    assert any(names[id(p)].endswith('mlp.up_proj.weight') for p in groups['base']['params'])
    assert param_group_of('model.x.layers.0.mlp.gate_proj.weight') == 'base'
    trainable = sum(1 for p in policy.parameters() if p.requires_grad)
    assert sum(len(g['params']) for g in groups.values()) == trainable

    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    scheduler = config.get_scheduler_preset().build(optimizer, num_training_steps=90_000)
    lrs = {g['group_name']: [] for g in optimizer.param_groups}
    for step in range(1001):
        if step in (0, 100, 1000):
            for g in optimizer.param_groups:
                lrs[g['group_name']].append(g['lr'])
        optimizer.step()
        scheduler.step()
    assert lrs['router'][0] == pytest.approx(5e-5 / 101)
    assert lrs['router'][1] == pytest.approx(5e-5)
    assert lrs['base'][1] == pytest.approx(2.5e-5 / 1001 + (2.5e-5 - 2.5e-5 / 1001) * 0.1)
    assert lrs['base'][2] == pytest.approx(2.5e-5)
    assert lrs['router'][2] < 5e-5
    assert config.get_optimizer_preset().grad_clip_norm == 1.0


def test_tiny_adamoe_trains_and_checkpoint_reload_is_exact(tiny_backbone, synthetic_dataset, tmp_path):
    torch.manual_seed(0)
    config = make_tiny_adamoe_config(
        tiny_backbone,
        top_k=2,
        base_lr=2e-3,
        experts_lr=2e-3,
        router_lr=4e-3,
        base_warmup_steps=0,
        experts_warmup_steps=0,
        router_warmup_steps=0,
    )
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    dataset = dataset_for(config, synthetic_dataset)
    eval_batch = preprocessor(first_batch(config, dataset, batch_size=8, seed=123))
    eval_noise = torch.randn(8, config.chunk_size, config.max_action_dim, generator=torch.Generator().manual_seed(1))
    eval_time = torch.linspace(0.1, 0.9, 8)

    def eval_loss():
        policy.eval()
        with torch.no_grad():
            _, info = policy.forward(dict(eval_batch), noise=eval_noise, time=eval_time)
        policy.train()
        return info['flow_loss']

    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    before = eval_loss()
    logged = train_steps(policy, preprocessor, dataset, optimizer, 40)
    after = eval_loss()
    print('eval flow loss', before, '->', after)
    assert after < 0.7 * before, (before, after)
    assert int(policy.moe_train_step) == 40
    assert {'flow_loss', 'balance_loss', 'z_loss', 'balance_coef', 'expert0_share'} <= set(logged[-1])
    assert sum(logged[-1][f'expert{e}_share'] for e in range(4)) == pytest.approx(2.0)
    assert logged[-1]['loss'] == pytest.approx(logged[-1]['flow_loss'] + 0.01 * logged[-1]['balance_loss'], rel=1e-5)

    policy.save_pretrained(tmp_path / 'ckpt')
    reloaded = AdaMoEPolicy.from_pretrained(tmp_path / 'ckpt')
    assert int(reloaded.moe_train_step) == 40
    obs = {k: v for k, v in eval_batch.items() if k != 'action'}
    noise = torch.randn(8, config.chunk_size, config.max_action_dim, generator=torch.Generator().manual_seed(7))
    policy.eval()
    actions = postprocessor(policy.predict_action_chunk(dict(obs), noise=noise.clone()))
    with capture_routing() as routing:
        reloaded_actions = postprocessor(reloaded.predict_action_chunk(dict(obs), noise=noise.clone()))
    assert actions.shape == (8, config.chunk_size, 6)
    assert torch.isfinite(actions).all()
    assert torch.equal(actions, reloaded_actions)
    stats = reloaded.routing_stats(routing)
    assert stats.token_fraction.shape == (len(reloaded.moe_layer_indices), 4)


def test_dense_routing_mode_is_the_plain_base(tiny_backbone, synthetic_dataset):
    config = make_tiny_adamoe_config(tiny_backbone, routing_mode='dense')
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    preprocessor, _ = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    with capture_routing() as routing:
        policy.forward(preprocessor(first_batch(config, dataset_for(config, synthetic_dataset))))
    assert policy.moe_modules == [] and policy.routing_stats(routing) is None
    assert not any('experts_' in n or 'router' in n for n, _ in policy.named_parameters())
    assert isinstance(config, AdaMoEConfig)
