"""AdaMoE layer math, execution paths, gradients and upcycling (plain torch, tiny tensors)."""

import math

import pytest
import torch
from torch import nn

from lerobot_policy_adamoe.moe import (
    AdaMoEFeedForward,
    capture_routing,
    expected_upcycled_factor,
    mean_balance_loss,
    routing_statistics,
)


class GatedFFN(nn.Module):
    """Minimal LlamaMLP look-alike."""

    def __init__(self, hidden: int, inter: int, act: nn.Module | None = None) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)
        self.act_fn = act if act is not None else nn.SiLU()

    def forward(self, x):
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


def hand_layer(mode: str, top_k: int) -> AdaMoEFeedForward:
    """D=2, H=1, E=2 layer with identity activation and weights chosen for easy arithmetic."""
    ffn = GatedFFN(2, 1, act=nn.Identity())
    with torch.no_grad():
        ffn.gate_proj.weight.copy_(torch.tensor([[1.0, 0.0]]))
        ffn.up_proj.weight.copy_(torch.tensor([[0.0, 1.0]]))
        ffn.down_proj.weight.copy_(torch.tensor([[1.0], [1.0]]))
    layer = AdaMoEFeedForward(ffn, num_experts=2, top_k=top_k, routing_mode=mode, execution='dense')
    with torch.no_grad():
        # expert 0: gate.x = 2, up.x = 3 -> h = 6, out = [0, 6]; expert 1: h = 1 * 2 = 2, out = [6, 0]
        layer.experts_gate.copy_(torch.tensor([[[0.0], [1.0]], [[1.0], [0.0]]]))
        layer.experts_up.copy_(torch.tensor([[[1.0], [1.0]], [[0.0], [1.0]]]))
        layer.experts_down.copy_(torch.tensor([[[0.0, 1.0]], [[3.0, 0.0]]]))
        layer.router.weight.copy_(torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]]))  # p = [0.25, 0.75]
        layer.scale_adapter.weight.copy_(torch.tensor([[0.1, 0.0], [0.0, -0.05]]))  # s = [0.1, -0.1]
    return layer


X = torch.tensor([[1.0, 2.0]])


@pytest.mark.parametrize(
    ('mode', 'top_k', 'expected', 'weights'),
    [
        ('adamoe', 1, [2.95, 1.0], [0.65]),  # 0.5*[2,2] + 0.5*(0.75-0.1)*[6,0]
        ('vanilla', 1, [3.25, 1.0], [0.75]),  # 0.5*[2,2] + 0.5*0.75*[6,0]
        ('adamoe', 2, [2.95, 2.05], [0.65, 0.35]),  # + 0.5*(0.25+0.1)*[0,6]
        ('vanilla', 2, [3.25, 1.75], [0.75, 0.25]),
    ],
)
def test_layer_matches_hand_computed_values(mode, top_k, expected, weights):
    layer = hand_layer(mode, top_k)
    for execution in ('dense', 'sparse'):
        layer.execution = execution
        out, info = layer.forward_with_routing(X)
        torch.testing.assert_close(out, torch.tensor([expected]), atol=1e-6, rtol=0)
        assert info.topk_idx.tolist() == [[1, 0][:top_k]]
        torch.testing.assert_close(info.topk_weight, torch.tensor([weights]), atol=1e-6, rtol=0)
        assert not torch.isnan(info.topk_weight).any()
    # f = [0, 1] (top-1) or [1, 1] (top-2), P = [0.25, 0.75]
    expected_balance = 0.375 if top_k == 1 else 0.5
    assert info.balance_loss.item() == pytest.approx(expected_balance)
    assert info.z_loss.item() == pytest.approx(math.log(4.0) ** 2)


def test_invalid_configuration_is_rejected():
    ffn = GatedFFN(4, 8)
    with pytest.raises(ValueError, match='top_k'):
        AdaMoEFeedForward(ffn, num_experts=4, top_k=5)
    with pytest.raises(ValueError, match='routing_mode'):
        AdaMoEFeedForward(ffn, routing_mode='dense')
    with pytest.raises(ValueError, match='function_preserving_init'):
        AdaMoEFeedForward(ffn, routing_mode='vanilla', function_preserving_init=True)
    with pytest.raises(TypeError, match='gated FFN'):
        AdaMoEFeedForward(nn.Linear(4, 4))


@pytest.mark.parametrize('mode', ['adamoe', 'vanilla'])
@pytest.mark.parametrize('top_k', [1, 2, 4])
def test_dense_and_sparse_paths_agree(mode, top_k):
    gen = torch.Generator().manual_seed(top_k)
    ffn = GatedFFN(16, 32).double()
    layer = AdaMoEFeedForward(
        ffn, num_experts=4, top_k=top_k, routing_mode=mode, noise_std=0.05, gating_init_std=0.3, generator=gen
    )
    x = torch.randn(3, 100, 16, dtype=torch.float64, generator=gen)
    outputs, grads = {}, {}
    for execution in ('dense', 'sparse'):
        layer.zero_grad()
        layer.execution = execution
        out, info = layer.forward_with_routing(x)
        out.pow(2).sum().backward()
        outputs[execution] = out
        grads[execution] = {n: p.grad.clone() for n, p in layer.named_parameters() if p.grad is not None}
    torch.testing.assert_close(outputs['dense'], outputs['sparse'], atol=1e-12, rtol=1e-12)
    assert grads['dense'].keys() == grads['sparse'].keys()
    for name in grads['dense']:
        torch.testing.assert_close(grads['dense'][name], grads['sparse'][name], atol=1e-10, rtol=1e-10)
    # routing must really spread over experts for this comparison to mean anything
    assert len(info.topk_idx.unique()) == 4


def test_auto_execution_uses_dense_path_while_tracing():
    layer = AdaMoEFeedForward(GatedFFN(8, 16), num_experts=4, top_k=1)
    assert layer._use_sparse(10, torch.device('cpu'))
    assert layer._use_sparse(1000, torch.device('cuda'))
    assert not layer._use_sparse(10, torch.device('cuda'))
    full = AdaMoEFeedForward(GatedFFN(8, 16), num_experts=2, top_k=2)
    assert not full._use_sparse(1000, torch.device('cpu'))
    traced = torch.jit.trace(layer, torch.randn(1, 300, 8))
    graph = str(traced.graph)
    assert 'einsum' in graph and 'nonzero' not in graph


def test_adamoe_router_gradient_flows_only_through_probabilities_and_balance_loss():
    torch.manual_seed(0)
    layer = AdaMoEFeedForward(GatedFFN(8, 16), num_experts=4, top_k=2, gating_init_std=0.5, execution='dense')
    x = torch.randn(40, 8)
    target = torch.randn(40, 8)
    out, info = layer.forward_with_routing(x)
    task_loss = (out - target).pow(2).mean()
    router_grad, adapter_grad = torch.autograd.grad(
        task_loss, [layer.router.weight, layer.scale_adapter.weight], retain_graph=True
    )
    assert adapter_grad.abs().sum() > 0
    # Task-loss gradient of the router must equal the gradient through the selected p_i alone.
    dl_dweight = torch.autograd.grad(task_loss, info.topk_weight, retain_graph=True)[0]
    probs_only = torch.softmax(x @ layer.router.weight.t(), dim=-1).gather(1, info.topk_idx)
    expected = torch.autograd.grad((dl_dweight.detach() * probs_only).sum(), layer.router.weight)[0]
    torch.testing.assert_close(router_grad, expected)
    # Balance loss: f is a constant count, the gradient comes from P_i only; the adapter is untouched.
    balance_router, balance_adapter = torch.autograd.grad(
        info.balance_loss, [layer.router.weight, layer.scale_adapter.weight], allow_unused=True
    )
    assert balance_adapter is None
    counts = torch.bincount(info.topk_idx.reshape(-1), minlength=4).float() / 40
    mean_p = torch.softmax(x @ layer.router.weight.t(), dim=-1).mean(0)
    expected_balance = torch.autograd.grad((counts * mean_p).mean(), layer.router.weight)[0]
    torch.testing.assert_close(balance_router, expected_balance)


def test_vanilla_mode_leaves_scale_adapter_unused():
    layer = AdaMoEFeedForward(GatedFFN(8, 16), routing_mode='vanilla')
    layer(torch.randn(5, 8)).sum().backward()
    assert layer.scale_adapter.weight.grad is None
    assert layer.router.weight.grad.abs().sum() > 0


def test_upcycled_layer_scales_dense_output_by_selected_weights():
    torch.manual_seed(1)
    ffn = GatedFFN(16, 32)
    x = torch.randn(2, 30, 16)
    dense_out = ffn(x).detach()
    layer = AdaMoEFeedForward(ffn, num_experts=4, top_k=2, noise_std=0.0)
    for stacked, dense in (
        (layer.experts_gate, ffn.gate_proj),
        (layer.experts_up, ffn.up_proj),
        (layer.experts_down, ffn.down_proj),
    ):
        for e in range(4):
            assert torch.equal(stacked[e], dense.weight.t())
    assert layer.gate_proj is ffn.gate_proj
    assert 0.0 < layer.router.weight.std().item() < 0.02
    out, info = layer.forward_with_routing(x)
    factor = expected_upcycled_factor(info).reshape(2, 30, 1)
    torch.testing.assert_close(out, factor * dense_out, atol=1e-6, rtol=1e-5)
    # not function-preserving: the factor differs from 1
    assert (factor - 1).abs().max() > 1e-3


def test_noise_makes_experts_differ_and_function_preserving_init_reproduces_dense():
    ffn = GatedFFN(16, 32)
    noisy = AdaMoEFeedForward(ffn, num_experts=4, noise_std=0.01)
    delta = noisy.experts_up - ffn.up_proj.weight.t()
    assert 0.005 < delta.std().item() < 0.02
    x = torch.randn(50, 16)
    for k in (1, 2, 4):
        fp = AdaMoEFeedForward(GatedFFN(16, 32), num_experts=4, top_k=k, function_preserving_init=True)
        torch.testing.assert_close(fp(x), fp.shared_expert(x), atol=1e-6, rtol=1e-5)


def test_routing_statistics_per_layer():
    torch.manual_seed(2)
    layers = [AdaMoEFeedForward(GatedFFN(8, 16), num_experts=4, top_k=2, gating_init_std=1.0) for _ in range(3)]
    x = torch.randn(64, 8)
    with capture_routing() as captured:
        for layer in layers:
            layer(x)
    (infos,) = captured.passes(layers)
    stats = routing_statistics(infos)
    assert stats.token_fraction.shape == (3, 4) and stats.mean_weight.shape == (3, 4)
    torch.testing.assert_close(stats.token_fraction.sum(1), torch.full((3,), 2.0))
    info = infos[0]
    sel = info.topk_idx == 1
    if sel.any():
        assert stats.mean_weight[0, 1].item() == pytest.approx(info.topk_weight[sel].mean().item(), rel=1e-5)
    balance, z = mean_balance_loss(infos)
    assert balance.item() == pytest.approx(stats.balance_loss.mean().item(), rel=1e-6)
    assert z.requires_grad


def test_forward_hands_routing_to_every_open_capture_and_only_inside_it():
    torch.manual_seed(3)
    first, second = (AdaMoEFeedForward(GatedFFN(8, 16), num_experts=4, top_k=1) for _ in range(2))
    x = torch.randn(6, 8)
    first(x)  # outside any capture: nothing is kept anywhere
    with capture_routing() as outer:
        for _step in range(3):
            out = second(first(x))
        with capture_routing() as inner:
            first(x)
    first(x)
    expected_out, expected_info = second.forward_with_routing(first(x))
    torch.testing.assert_close(out, expected_out)
    assert len(outer.of(first)) == 4 and len(outer.of(second)) == 3 and len(inner.of(first)) == 1
    assert torch.equal(outer.of(second)[-1].topk_idx, expected_info.topk_idx)
    with pytest.raises(RuntimeError, match='unequally'):
        outer.passes([first, second])
    assert [len(p) for p in inner.passes([first])] == [1]
