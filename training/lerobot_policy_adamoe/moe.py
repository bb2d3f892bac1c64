"""AdaMoE feed-forward layer (plain PyTorch): shared dense FFN + top-k routed experts with decoupled weights.

Output per token:  y = 0.5 * shared(x) + 0.5 * sum_{i in TopK(p)} w_i * E_i(x),  p = softmax(router(x)).

- `adamoe`:  w_i = p_i + scale_adapter(x)_i  (router selects, the adapter scales; no renormalisation).
- `vanilla`: w_i = p_i of the selected expert (coupled), gathered positionally from the top-k values
  (the reference's HEAD gathers the (N, k) values by expert id, which yields NaN for ids >= k).

The layer's forward returns a tensor, as the decoder that calls it expects; its routing goes to whoever opened
`capture_routing()` around the call (training losses, the ONNX export, the development backend), or is
returned directly by `forward_with_routing`.

The shared expert keeps the dense FFN's parameter names (`gate_proj`, `up_proj`, `down_proj`), so a dense
checkpoint's FFN weights load unchanged and code that reads `mlp.up_proj.weight` (LeRobot's PI0) keeps working.

Reference upcycling (experts = copies of the dense FFN, router and adapter ~ N(0, std^2)) is NOT
function-preserving: with identical experts each token outputs (0.5 + 0.5 * sum_sel w_i) * FFN(x).
`function_preserving_init=True` (adamoe mode only) zero-inits router and adapter weights and gives the adapter
a bias of 1/k - 1/E, so sum_sel w_i = k/E + k(1/k - 1/E) = 1 and the layer equals the dense FFN at step 0;
the task loss (through p_i) and the balance loss break the router's symmetry during training.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

RoutingMode = Literal['adamoe', 'vanilla']
ExecutionMode = Literal['auto', 'dense', 'sparse']
MOE_EXECUTIONS = ('auto', 'dense', 'sparse')

# On accelerators, below this many tokens the sparse path's per-expert launches and host syncs
# (nonzero) cost more than the dense path's extra FLOPs; on CPU sparse wins at every size we measured
# (training/benchmarks/bench_train.py).
_SPARSE_MIN_TOKENS_ACCELERATOR = 256


@dataclass
class RoutingInfo:
    """Routing of one forward pass; tensors stay in the autograd/trace graph."""

    topk_idx: Tensor  # (N, k) int64, selected experts per token, by descending probability
    topk_weight: Tensor  # (N, k) weight applied to each selected expert
    probs: Tensor  # (N, E) router softmax
    balance_loss: Tensor  # () mean_i f_i * P_i (reference definition)
    z_loss: Tensor  # () mean_tokens logsumexp(router logits)^2 (unscaled)


@dataclass
class RouterStats:
    """Per-layer router statistics with the auxiliary losses (float tensors on CPU), for training logs."""

    token_fraction: Tensor  # (L, E) share of tokens whose top-k contains the expert; rows sum to k
    mean_weight: Tensor  # (L, E) mean weight given to the expert where selected; 0 where never selected
    balance_loss: Tensor  # (L,)
    z_loss: Tensor  # (L,)
    top_k: int


def balance_loss(probs: Tensor, topk_idx: Tensor) -> Tensor:
    """Compute the reference load-balancing loss: mean over experts of f_i * P_i (f carries no gradient)."""
    num_experts = probs.shape[-1]
    counts = torch.zeros(num_experts, dtype=probs.dtype, device=probs.device)
    counts = counts.index_add(0, topk_idx.reshape(-1), torch.ones_like(topk_idx.reshape(-1), dtype=probs.dtype))
    token_fraction = counts / probs.shape[0]
    return torch.mean(token_fraction.detach() * probs.mean(dim=0))


def router_z_loss(logits: Tensor) -> Tensor:
    """Mean squared log-partition of the router logits (ST-MoE z-loss without its coefficient)."""
    return torch.logsumexp(logits, dim=-1).pow(2).mean()


class AdaMoEFeedForward(nn.Module):
    """Replaces one gated FFN (gate/up/down + act_fn, e.g. LlamaMLP or GemmaMLP) by shared + routed experts."""

    def __init__(
        self,
        dense_ffn: nn.Module,
        num_experts: int = 4,
        top_k: int = 1,
        routing_mode: RoutingMode = 'adamoe',
        execution: ExecutionMode = 'auto',
        noise_std: float = 0.0,
        gating_init_std: float = 0.006,
        function_preserving_init: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name in ('gate_proj', 'up_proj', 'down_proj', 'act_fn'):
            if not hasattr(dense_ffn, name):
                raise TypeError(f"dense_ffn {type(dense_ffn).__name__} has no '{name}': not a gated FFN")
        if routing_mode not in ('adamoe', 'vanilla'):
            raise ValueError(f"routing_mode must be 'adamoe' or 'vanilla' (dense = keep the FFN), got {routing_mode!r}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f'top_k must be in 1..num_experts={num_experts}, got {top_k}')
        if execution not in MOE_EXECUTIONS:
            raise ValueError(f'execution must be one of {MOE_EXECUTIONS}, got {execution!r}')
        if function_preserving_init and routing_mode != 'adamoe':
            raise ValueError("function_preserving_init needs routing_mode='adamoe' (it uses the scale adapter)")
        self.num_experts = num_experts
        self.top_k = top_k
        self.routing_mode = routing_mode
        self.execution = execution
        self.function_preserving_init = function_preserving_init
        # Shared expert: the dense FFN's own submodules, under their original names.
        self.gate_proj = dense_ffn.gate_proj
        self.up_proj = dense_ffn.up_proj
        self.down_proj = dense_ffn.down_proj
        self.act_fn: Callable[[Tensor], Tensor] = dense_ffn.act_fn
        hidden, inter = self.gate_proj.in_features, self.gate_proj.out_features
        weight = self.gate_proj.weight
        factory = {'dtype': weight.dtype, 'device': weight.device}
        # Stacked expert weights, laid out for x @ W (einsum-friendly, one matmul per expert in sparse mode).
        self.experts_gate = nn.Parameter(torch.empty(num_experts, hidden, inter, **factory))
        self.experts_up = nn.Parameter(torch.empty(num_experts, hidden, inter, **factory))
        self.experts_down = nn.Parameter(torch.empty(num_experts, inter, hidden, **factory))
        self.router = nn.Linear(hidden, num_experts, bias=False, **factory)
        self.scale_adapter = nn.Linear(hidden, num_experts, bias=function_preserving_init, **factory)
        self.upcycle(noise_std=noise_std, gating_init_std=gating_init_std, generator=generator)

    @property
    def hidden_size(self) -> int:
        """Token width D."""
        return self.gate_proj.in_features

    @torch.no_grad()
    def upcycle(
        self, noise_std: float = 0.0, gating_init_std: float = 0.006, generator: torch.Generator | None = None
    ) -> None:
        """Re-initialise routed experts from the shared FFN (+ N(0, noise_std^2)) and the gates from N(0, std^2)."""
        templates = (
            (self.experts_gate, self.gate_proj.weight.t()),
            (self.experts_up, self.up_proj.weight.t()),
            (self.experts_down, self.down_proj.weight.t()),
        )
        for stacked, template in templates:
            stacked.copy_(template.unsqueeze(0).expand_as(stacked))
            if noise_std > 0:
                stacked.add_(_normal_like(stacked, noise_std, generator))
        if self.function_preserving_init:
            self.router.weight.zero_()
            self.scale_adapter.weight.zero_()
            self.scale_adapter.bias.fill_(1.0 / self.top_k - 1.0 / self.num_experts)
        else:
            self.router.weight.copy_(_normal_like(self.router.weight, gating_init_std, generator))
            self.scale_adapter.weight.copy_(_normal_like(self.scale_adapter.weight, gating_init_std, generator))

    def shared_expert(self, x: Tensor) -> Tensor:
        """Apply the original dense FFN."""
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))

    def route(self, x_flat: Tensor) -> RoutingInfo:
        """Select top-k experts per token and compute their weights and the auxiliary losses."""
        logits = self.router(x_flat)
        probs = torch.softmax(logits.float(), dim=-1).to(x_flat.dtype)
        topk_prob, topk_idx = torch.topk(probs, self.top_k, dim=-1)
        if self.routing_mode == 'adamoe':
            weights = probs + self.scale_adapter(x_flat)
            topk_weight = torch.gather(weights, 1, topk_idx)
        else:
            topk_weight = topk_prob
        return RoutingInfo(
            topk_idx=topk_idx,
            topk_weight=topk_weight,
            probs=probs,
            balance_loss=balance_loss(probs, topk_idx),
            z_loss=router_z_loss(logits.float()),
        )

    def _use_sparse(self, num_tokens: int, device: torch.device) -> bool:
        if self.execution != 'auto':
            return self.execution == 'sparse'
        exporting = torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()
        if exporting or self.top_k == self.num_experts:
            return False  # static shapes for export; with k == E nothing is skipped anyway
        return device.type == 'cpu' or num_tokens >= _SPARSE_MIN_TOKENS_ACCELERATOR

    def routed_dense(self, x_flat: Tensor, routing: RoutingInfo) -> Tensor:
        """All experts on all tokens (batched einsum), then gather the top-k: static shapes, export-friendly."""
        gate = torch.einsum('nd,edh->neh', x_flat, self.experts_gate)
        up = torch.einsum('nd,edh->neh', x_flat, self.experts_up)
        expert_out = torch.einsum('neh,ehd->ned', self.act_fn(gate) * up, self.experts_down)
        index = routing.topk_idx.unsqueeze(-1).expand(-1, -1, expert_out.shape[-1])
        selected = torch.gather(expert_out, 1, index)  # (N, k, D)
        return (selected * routing.topk_weight.unsqueeze(-1)).sum(dim=1)

    def routed_sparse(self, x_flat: Tensor, routing: RoutingInfo) -> Tensor:
        """Each expert only on the tokens that selected it (grouped), scattered back with its weight.

        The loop runs every expert, also one that no token selected (an empty subset costs nothing): a trace
        then keeps all experts, each on the token subset NonZero/Gather find at run time, so the ONNX export
        runs this very code with top-k FLOPs instead of freezing the example input's routing.
        """
        out = torch.zeros_like(x_flat)
        flat_idx = routing.topk_idx.reshape(-1)
        flat_weight = routing.topk_weight.reshape(-1)
        token_of_slot = torch.arange(x_flat.shape[0], device=x_flat.device).repeat_interleave(self.top_k)
        gates, ups, downs = self.experts_gate, self.experts_up, self.experts_down
        if torch.is_grad_enabled():
            # unbind once: its backward stacks the per-expert grads, whereas indexing [e] per expert would
            # scatter each into a zero tensor of the full stacked size. Without autograd (inference, export)
            # plain indexing is kept: a trace folds it into per-expert constants, an unbind into a run-time Split.
            gates, ups, downs = self.experts_gate.unbind(0), self.experts_up.unbind(0), self.experts_down.unbind(0)
        for expert in range(self.num_experts):
            slots = torch.nonzero(flat_idx == expert).reshape(-1)
            tokens = token_of_slot[slots]
            xe = x_flat[tokens]
            h = self.act_fn(xe @ gates[expert]) * (xe @ ups[expert])
            ye = (h @ downs[expert]) * flat_weight[slots].unsqueeze(-1)
            out = out.index_add(0, tokens, ye)
        return out

    def forward_with_routing(self, x: Tensor) -> tuple[Tensor, RoutingInfo]:
        """Mix the shared FFN and the weighted routed experts; return the output and this call's routing."""
        x_flat = x.reshape(-1, x.shape[-1])
        routing = self.route(x_flat)
        if self._use_sparse(x_flat.shape[0], x_flat.device):
            routed = self.routed_sparse(x_flat, routing)
        else:
            routed = self.routed_dense(x_flat, routing)
        return 0.5 * self.shared_expert(x) + 0.5 * routed.reshape(x.shape), routing

    def forward(self, x: Tensor) -> Tensor:
        """Return the layer output (what the host decoder expects) and hand the routing to open captures."""
        out, routing = self.forward_with_routing(x)
        for capture in _CAPTURES.get():
            capture.add(self, routing)
        return out


class RoutingCapture:
    """The routing of every AdaMoE layer call made inside `capture_routing()`, per layer in call order."""

    def __init__(self) -> None:
        """Start empty."""
        self._calls: dict[AdaMoEFeedForward, list[RoutingInfo]] = {}

    def add(self, layer: AdaMoEFeedForward, routing: RoutingInfo) -> None:
        """Record one call of `layer`."""
        self._calls.setdefault(layer, []).append(routing)

    def of(self, layer: AdaMoEFeedForward) -> list[RoutingInfo]:
        """Return the routing of each call of `layer`, oldest first."""
        return list(self._calls.get(layer, []))

    def passes(self, layers: Sequence[AdaMoEFeedForward]) -> list[list[RoutingInfo]]:
        """One entry per pass through `layers` (a training forward, a denoise step): each layer's routing."""
        per_layer = [self.of(layer) for layer in layers]
        if len({len(calls) for calls in per_layer}) > 1:
            counts = [len(calls) for calls in per_layer]
            raise RuntimeError(f'AdaMoE layers were called unequally often ({counts}); passes are ambiguous')
        return [list(step) for step in zip(*per_layer, strict=True)]


_CAPTURES: contextvars.ContextVar[tuple[RoutingCapture, ...]] = contextvars.ContextVar(
    'adamoe_routing_captures', default=()
)


@contextlib.contextmanager
def capture_routing() -> Iterator[RoutingCapture]:
    """Collect the routing of every AdaMoE layer called inside the block (captures may nest)."""
    capture = RoutingCapture()
    token = _CAPTURES.set((*_CAPTURES.get(), capture))
    try:
        yield capture
    finally:
        _CAPTURES.reset(token)


def _normal_like(t: Tensor, std: float, generator: torch.Generator | None) -> Tensor:
    noise = torch.randn(t.shape, generator=generator, dtype=torch.float32, device='cpu')
    return (noise * std).to(dtype=t.dtype, device=t.device)


def moe_layers(model: nn.Module) -> list[AdaMoEFeedForward]:
    """All AdaMoE layers of `model` in module order."""
    return [m for m in model.modules() if isinstance(m, AdaMoEFeedForward)]


def routing_statistics(infos: Sequence[RoutingInfo], top_k: int | None = None) -> RouterStats:
    """Turn one pass's per-layer routing (an entry of `RoutingCapture.passes`) into per-layer stats."""
    if not infos:
        raise ValueError('routing_statistics needs at least one RoutingInfo')
    fractions, weights, balances, zs = [], [], [], []
    for info in infos:
        idx = info.topk_idx.detach().reshape(-1).cpu()
        w = info.topk_weight.detach().reshape(-1).float().cpu()
        num_experts = info.probs.shape[-1]
        num_tokens = info.topk_idx.shape[0]
        counts = torch.bincount(idx, minlength=num_experts).float()
        weight_sum = torch.zeros(num_experts).index_add(0, idx, w)
        fractions.append(counts / max(num_tokens, 1))
        weights.append(torch.where(counts > 0, weight_sum / counts.clamp(min=1), torch.zeros_like(counts)))
        balances.append(info.balance_loss.detach().float().cpu())
        zs.append(info.z_loss.detach().float().cpu())
    k = top_k if top_k is not None else infos[0].topk_idx.shape[1]
    return RouterStats(
        token_fraction=torch.stack(fractions),
        mean_weight=torch.stack(weights),
        balance_loss=torch.stack(balances),
        z_loss=torch.stack(zs),
        top_k=k,
    )


def mean_balance_loss(infos: Sequence[RoutingInfo]) -> tuple[Tensor, Tensor]:
    """Mean balance loss and z-loss over one pass's layers (as the reference averages over layers)."""
    if not infos:
        raise ValueError('mean_balance_loss needs the routing of at least one layer')
    balance = torch.stack([i.balance_loss for i in infos]).mean()
    z = torch.stack([i.z_loss for i in infos]).mean()
    return balance, z


def expected_upcycled_factor(info: RoutingInfo) -> Tensor:
    """Per-token factor (0.5 + 0.5 * sum of selected weights) of an upcycled layer with identical experts."""
    return 0.5 + 0.5 * info.topk_weight.sum(dim=-1)


__all__ = [
    'MOE_EXECUTIONS',
    'AdaMoEFeedForward',
    'RouterStats',
    'RoutingCapture',
    'RoutingInfo',
    'balance_loss',
    'capture_routing',
    'expected_upcycled_factor',
    'mean_balance_loss',
    'moe_layers',
    'router_z_loss',
    'routing_statistics',
]
