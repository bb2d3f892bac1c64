"""Per-chunk expert usage statistics, accumulated over all flow steps (for the ExpertUsage message)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adamoe_contract.spec import RoutingSpec


@dataclass(frozen=True)
class RoutingStats:
    """Expert usage of one chunk per MoE layer.

    token_fraction (L, E): share of action tokens whose top-k holds the expert (rows sum to top_k);
    mean_weight (L, E): mean routing weight where selected (0 where never selected);
    token_expert, token_weight (L, T): per action token, the first-choice expert and its weight at the last flow
    step (the one that produced the returned actions), for per-token plots; None for a dense bundle.
    """

    token_fraction: np.ndarray
    mean_weight: np.ndarray
    layer_indices: tuple[int, ...]
    mode: str
    top_k: int
    token_expert: np.ndarray | None = None
    token_weight: np.ndarray | None = None


class RoutingAccumulator:
    """Sums expert selections and weights over the denoise steps of one inference."""

    def __init__(self, spec: RoutingSpec) -> None:
        self.spec = spec
        self.counts = np.zeros((spec.num_layers, spec.num_experts), dtype=np.float64)
        self.weight_sums = np.zeros_like(self.counts)
        self.tokens = 0
        self._last: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, indices: np.ndarray, weights: np.ndarray) -> None:
        """Add one step's (1, L, T, k) expert indices and weights."""
        layers = indices.shape[1]
        flat_idx = indices[0].reshape(layers, -1)
        flat_w = weights[0].reshape(layers, -1).astype(np.float64)
        for layer in range(layers):
            self.counts[layer] += np.bincount(flat_idx[layer], minlength=self.spec.num_experts)
            self.weight_sums[layer] += np.bincount(flat_idx[layer], flat_w[layer], minlength=self.spec.num_experts)
        self.tokens += indices.shape[2]
        self._last = (indices[0, :, :, 0].copy(), weights[0, :, :, 0].astype(np.float32))

    def result(self) -> RoutingStats:
        """Statistics of everything added so far."""
        fraction = self.counts / max(self.tokens, 1)
        mean_weight = np.divide(self.weight_sums, self.counts, out=np.zeros_like(self.counts), where=self.counts > 0)
        return RoutingStats(
            token_fraction=fraction.astype(np.float32),
            mean_weight=mean_weight.astype(np.float32),
            layer_indices=self.spec.layer_indices,
            mode=self.spec.mode,
            top_k=self.spec.top_k,
            token_expert=None if self._last is None else self._last[0],
            token_weight=None if self._last is None else self._last[1],
        )
