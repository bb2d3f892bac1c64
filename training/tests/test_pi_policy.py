"""AdaMoE on LeRobot's own PI0 / PI05 classes at the test-only tiny size: plugin types, upcycling from a dense
LeRobot PI checkpoint, function preservation, training with the balance loss, and the checkpoint round trip."""

import pytest
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.policies.factory import get_policy_class, make_policy, make_pre_post_processors
from lerobot.policies.pi0 import modeling_pi0

from lerobot_policy_adamoe.modeling_adamoe import pi0_expert_layers
from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy, AdaMoEPI05Policy
from lerobot_policy_adamoe.moe import AdaMoEFeedForward, capture_routing, expected_upcycled_factor
from lerobot_policy_adamoe.testing import train_steps
from lerobot_policy_adamoe.tiny_pi import (
    TINY_GEMMA,
    TINY_SIGLIP,
    make_tiny_dense_pi_config,
    make_tiny_pi_config,
    tiny_pi_sizes,
)

KINDS = ('pi0', 'pi05')


def dataset_for(config, synthetic_dataset):
    fps = synthetic_dataset.meta.fps
    return LeRobotDataset(
        synthetic_dataset.repo_id,
        root=synthetic_dataset.root,
        delta_timestamps={'action': [i / fps for i in range(config.chunk_size)]},
    )


def first_batch(dataset, batch_size=4, seed=0):
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    return next(iter(loader))


def dense_pi_policy(kind, meta, seed):
    torch.manual_seed(seed)
    with tiny_pi_sizes():
        return make_policy(make_tiny_dense_pi_config(kind), ds_meta=meta)


def test_pi_policy_types_resolve_and_validate(tiny_backbone):
    assert get_policy_class('adamoe_pi0') is AdaMoEPI0Policy
    assert get_policy_class('adamoe_pi05') is AdaMoEPI05Policy
    with pytest.raises(ValueError, match='top_k'):
        make_tiny_pi_config('pi0', tiny_backbone, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match='routing_mode'):
        make_tiny_pi_config('pi05', tiny_backbone, routing_mode='csmoe')


@pytest.mark.parametrize('kind', KINDS)
def test_tiny_size_is_scoped_to_the_build(kind, tiny_backbone, synthetic_dataset):
    policy = make_policy(make_tiny_pi_config(kind, tiny_backbone), ds_meta=synthetic_dataset.meta)
    expert = policy.model.paligemma_with_expert.gemma_expert.config
    assert (expert.hidden_size, expert.num_hidden_layers) == (TINY_GEMMA['gemma_300m']['width'], 2)
    assert expert.use_adarms == (kind == 'pi05')
    vision = policy.model.paligemma_with_expert.paligemma.config.vision_config
    assert vision.hidden_size == TINY_SIGLIP['hidden_size']
    assert len(policy.moe_modules) == 2
    # LeRobot's real sizes are back once the build is done
    assert modeling_pi0.get_gemma_config('gemma_300m').width == 1024


@pytest.mark.parametrize('kind', KINDS)
def test_upcycling_from_a_dense_lerobot_pi_checkpoint(kind, tiny_backbone, synthetic_dataset, tmp_path):
    dense = dense_pi_policy(kind, synthetic_dataset.meta, seed=0)
    dense.save_pretrained(tmp_path / 'dense')
    dense_state = {k: v.clone() for k, v in dense.state_dict().items()}

    torch.manual_seed(1)  # another random init: every base weight must come from the checkpoint
    config = make_tiny_pi_config(kind, tiny_backbone, upcycle_from=str(tmp_path / 'dense'), top_k=2)
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    state = policy.state_dict()
    for key, value in dense_state.items():  # PaliGemma, SigLIP, projections and the shared experts
        assert torch.equal(state[key], value), key
    layers = pi0_expert_layers(policy)
    assert all(isinstance(layer.mlp, AdaMoEFeedForward) for layer in layers)
    assert policy.moe_modules == [layer.mlp for layer in layers]
    moe, dense_mlp = layers[1].mlp, pi0_expert_layers(dense)[1].mlp
    for e in range(config.num_experts):
        assert torch.equal(moe.experts_gate[e], dense_mlp.gate_proj.weight.t())
        assert torch.equal(moe.experts_up[e], dense_mlp.up_proj.weight.t())
        assert torch.equal(moe.experts_down[e], dense_mlp.down_proj.weight.t())
    gates = torch.cat([m.router.weight.flatten() for m in policy.moe_modules])
    gates = torch.cat([gates] + [m.scale_adapter.weight.flatten() for m in policy.moe_modules])
    assert abs(gates.std().item() - 0.006) < 0.002 and abs(gates.mean().item()) < 0.002

    # with noise_std 0 each layer outputs (0.5 + 0.5 * sum of selected weights) * dense FFN, token by token
    x = torch.randn(2, 8, moe.hidden_size)
    with torch.no_grad():
        out, info = moe.forward_with_routing(x)
        expected = expected_upcycled_factor(info).reshape(2, 8, 1) * dense_mlp(x)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)

    with pytest.raises(ValueError, match='not one of'):
        other = 'pi05' if kind == 'pi0' else 'pi0'
        make_policy(
            make_tiny_pi_config(other, tiny_backbone, upcycle_from=str(tmp_path / 'dense')),
            ds_meta=synthetic_dataset.meta,
        )


@pytest.mark.parametrize('kind', KINDS)
def test_function_preserving_upcycle_equals_the_dense_pi_policy(kind, tiny_backbone, synthetic_dataset, tmp_path):
    dense = dense_pi_policy(kind, synthetic_dataset.meta, seed=2)
    dense.save_pretrained(tmp_path / 'dense')
    dense_dir = str(tmp_path / 'dense')
    config = make_tiny_pi_config(kind, tiny_backbone, upcycle_from=dense_dir, function_preserving_init=True)
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    preprocessor, _ = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    batch = preprocessor(first_batch(dataset_for(config, synthetic_dataset)))
    # PI0/PI05 draw the flow noise and time inside forward: the same seed gives both the same draws
    torch.manual_seed(3)
    dense_loss, _ = dense.forward(dict(batch))
    torch.manual_seed(3)
    _, info = policy.forward(dict(batch))
    assert info['flow_loss'] == pytest.approx(dense_loss.item(), rel=1e-5)

    # inference too: prefix KV cache, then every denoise step through the MoE layers
    obs = {k: v for k, v in batch.items() if k != 'action'}
    noise = torch.randn(4, config.chunk_size, config.max_action_dim, generator=torch.Generator().manual_seed(4))
    expected = dense.predict_action_chunk(dict(obs), noise=noise.clone())
    with capture_routing() as routing:
        actions = policy.predict_action_chunk(dict(obs), noise=noise.clone())
    torch.testing.assert_close(actions, expected, atol=1e-5, rtol=1e-5)
    assert len(routing.passes(policy.moe_modules)) == config.num_inference_steps


@pytest.mark.parametrize('kind', KINDS)
def test_tiny_pi_adamoe_trains_and_checkpoint_reload_is_exact(kind, tiny_backbone, synthetic_dataset, tmp_path):
    torch.manual_seed(0)
    config = make_tiny_pi_config(
        kind,
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
    eval_batch = preprocessor(first_batch(dataset, batch_size=8, seed=123))

    def eval_loss():
        policy.eval()
        torch.manual_seed(11)
        with torch.no_grad():
            _, info = policy.forward(dict(eval_batch))
        policy.train()
        return info['flow_loss']

    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    assert [g['group_name'] for g in optimizer.param_groups] == ['base', 'experts', 'router']
    before = eval_loss()
    logged = train_steps(policy, preprocessor, dataset, optimizer, 45)
    after = eval_loss()
    print('eval flow loss', before, '->', after)
    assert after < 0.7 * before, (before, after)
    assert int(policy.moe_train_step) == 45
    assert {'flow_loss', 'balance_loss', 'z_loss', 'balance_coef', 'expert0_share'} <= set(logged[-1])
    assert sum(logged[-1][f'expert{e}_share'] for e in range(4)) == pytest.approx(2.0)
    assert logged[-1]['loss'] == pytest.approx(logged[-1]['flow_loss'] + 0.01 * logged[-1]['balance_loss'], rel=1e-5)

    policy.save_pretrained(tmp_path / 'ckpt')
    reloaded = get_policy_class(config.type).from_pretrained(tmp_path / 'ckpt')
    assert int(reloaded.moe_train_step) == 45
    obs = {k: v for k, v in eval_batch.items() if k != 'action'}
    noise = torch.randn(8, config.chunk_size, config.max_action_dim, generator=torch.Generator().manual_seed(7))
    policy.eval()
    actions = postprocessor(policy.predict_action_chunk(dict(obs), noise=noise.clone()))
    reloaded_actions = postprocessor(reloaded.predict_action_chunk(dict(obs), noise=noise.clone()))
    assert actions.shape == (8, config.chunk_size, 6) and torch.isfinite(actions).all()
    assert torch.equal(actions, reloaded_actions)


@pytest.mark.parametrize('kind', KINDS)
def test_bfloat16_pi_adamoe_trains_a_step_and_samples(kind, tiny_backbone, synthetic_dataset):
    # LeRobot's bf16 PI keeps norms and vision in fp32; the MoE layers follow the expert FFN's dtype
    config = make_tiny_pi_config(kind, tiny_backbone, dtype='bfloat16', top_k=2)
    policy = make_policy(config, ds_meta=synthetic_dataset.meta)
    moe = policy.moe_modules[0]
    assert {p.dtype for p in moe.parameters()} == {torch.bfloat16}
    preprocessor, _ = make_pre_post_processors(config, dataset_stats=synthetic_dataset.meta.stats)
    batch = preprocessor(first_batch(dataset_for(config, synthetic_dataset)))
    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    before = moe.experts_up.detach().clone()
    loss, info = policy.forward(dict(batch))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and info['balance_loss'] > 0
    assert not torch.equal(moe.experts_up, before)
    actions = policy.predict_action_chunk({k: v for k, v in batch.items() if k != 'action'})
    assert actions.shape == (4, config.chunk_size, 6) and torch.isfinite(actions).all()
