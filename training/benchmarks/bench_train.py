"""Training/inference cost of AdaMoE vs its dense base, measured side by side in one run.

Two sizes:
  tiny      the full tiny AdaMoE-SmolVLA policy vs the same tiny SmolVLA (batch of 8, chunk 16)
  smolvla   SmolVLA's action expert alone (LlamaModel: width 720, FFN 2048, 16 layers, 50 action tokens)
            with every FFN dense vs AdaMoE (E=4, top-1), dense and sparse MoE execution
Timings are medians over interleaved rounds (variants alternate, so machine load hits all alike).
Memory: weights + grads + AdamW states of the trainable part, and the training step's peak beyond the
weights (CUDA max_memory_allocated; on CPU the bytes autograd saves for backward).

    python training/benchmarks/bench_train.py [--rounds 5] [--threads 2] [--device cpu|cuda] [--skip-smolvla]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lerobot_policy_adamoe.moe import AdaMoEFeedForward


def median_time(fn: Callable[[], None], device: str) -> float:
    if device == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == 'cuda':
        torch.cuda.synchronize()
    return time.perf_counter() - start


# ---------------------------------------------------------------- SmolVLA-size action expert
def build_expert(variant: str, device: str) -> nn.Module:
    from transformers import LlamaConfig, LlamaModel

    torch.manual_seed(0)
    cfg = LlamaConfig(
        hidden_size=720,
        intermediate_size=2048,
        num_hidden_layers=16,
        num_attention_heads=15,
        num_key_value_heads=5,
        head_dim=64,
        vocab_size=8,
    )
    model = LlamaModel(cfg)
    model.embed_tokens = None
    if variant != 'base':
        for layer in model.layers:
            layer.mlp = AdaMoEFeedForward(layer.mlp, num_experts=4, top_k=1, execution=variant.removeprefix('moe_'))
    return model.to(device)


def expert_steps(model: nn.Module, device: str, batch: int) -> tuple[Callable[[], None], Callable[[], None]]:
    x = torch.randn(batch, 50, 720, device=device)
    x1 = torch.randn(1, 50, 720, device=device)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        model(inputs_embeds=x).last_hidden_state.pow(2).mean().backward()

    @torch.no_grad()
    def infer() -> None:  # 10 flow steps over the suffix, batch 1
        for _ in range(10):
            model(inputs_embeds=x1)

    return train_step, infer


# ---------------------------------------------------------------- tiny full policy
def build_tiny(variant: str, device: str, workdir: Path):
    from lerobot.configs.types import FeatureType, PolicyFeature

    from lerobot_policy_adamoe.tiny_base import make_tiny_adamoe_config, make_tiny_backbone

    backbone = workdir / 'backbone'
    if not (backbone / 'config.json').is_file():
        make_tiny_backbone(backbone)
    routing = 'dense' if variant == 'base' else 'adamoe'
    execution = 'auto' if variant == 'base' else variant.removeprefix('moe_')
    cfg = make_tiny_adamoe_config(backbone, routing_mode=routing, moe_execution=execution, device=device)
    cam = PolicyFeature(FeatureType.VISUAL, (3, 96, 128))
    cfg.input_features = {
        'observation.images.front': cam,
        'observation.images.wrist': cam,
        'observation.state': PolicyFeature(FeatureType.STATE, (6,)),
    }
    cfg.output_features = {'action': PolicyFeature(FeatureType.ACTION, (6,))}
    from lerobot.policies.factory import make_pre_post_processors

    from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy

    torch.manual_seed(0)
    policy = AdaMoEPolicy(cfg).to(device)
    pre, _ = make_pre_post_processors(cfg, dataset_stats=None)
    return policy, pre, cfg


def tiny_steps(policy, pre, cfg, device: str, batch: int):
    raw = {
        'observation.images.front': torch.rand(batch, 3, 96, 128),
        'observation.images.wrist': torch.rand(batch, 3, 96, 128),
        'observation.state': torch.randn(batch, 6),
        'action': torch.randn(batch, cfg.chunk_size, 6),
        'task': ['pick up the red cube'] * batch,
    }
    data = pre(raw)
    obs = {k: v for k, v in pre({**raw, 'task': ['pick up the red cube']}).items() if k != 'action'}
    obs = {k: (v[:1] if torch.is_tensor(v) else v) for k, v in obs.items()}

    def train_step() -> None:
        policy.train()
        policy.zero_grad(set_to_none=True)
        loss, _ = policy.forward(dict(data))
        loss.backward()

    def infer() -> None:
        policy.predict_action_chunk(dict(obs))

    return train_step, infer


# ---------------------------------------------------------------- memory
def train_memory(model: nn.Module, train_step: Callable[[], None], device: str) -> tuple[float, float]:
    """(parameter MB incl. grads + AdamW states = 4x trainable, peak training MB beyond the weights).

    CUDA: max_memory_allocated during one step. CPU: bytes of the tensors autograd saves for backward
    (the activation memory a training step holds at its peak; RSS is too coarse on a shared CPU box).
    """
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    weights_mb = (4 * trainable + frozen) / 2**20
    if device == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        train_step()
        torch.cuda.synchronize()
        return weights_mb, (torch.cuda.max_memory_allocated() - base) / 2**20
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        train_step()
    return weights_mb, sum(seen.values()) / 2**20


# ---------------------------------------------------------------- driver
def compare(size: str, variants: list[str], builders: dict, models: dict, device: str, rounds: int, batch: int) -> None:
    train_times = {v: [] for v in variants}
    infer_times = {v: [] for v in variants}
    for v in variants:  # warm-up
        builders[v][0]()
        builders[v][1]()
    for _ in range(rounds):
        for v in variants:
            train_times[v].append(median_time(builders[v][0], device))
            infer_times[v].append(median_time(builders[v][1], device))
    memory = {v: train_memory(models[v], builders[v][0], device) for v in variants}
    base = variants[0]
    t0, i0 = statistics.median(train_times[base]), statistics.median(infer_times[base])
    print(f'\n== {size} (batch {batch} train, batch 1 inference = 10 flow steps; {rounds} rounds, {device}) ==')
    print(
        f'{"variant":<12}{"fwd+bwd s":>10}{"ratio":>7}{"infer s":>9}{"ratio":>7}{"weights+opt MB":>16}'
        f'{"ratio":>7}{"activ. MB":>11}{"ratio":>7}'
    )
    w0, a0 = memory[base]
    for v in variants:
        t, i = statistics.median(train_times[v]), statistics.median(infer_times[v])
        w, a = memory[v]
        print(f'{v:<12}{t:>10.4f}{t / t0:>7.2f}{i:>9.4f}{i / i0:>7.2f}{w:>16.1f}{w / w0:>7.2f}{a:>11.1f}{a / a0:>7.2f}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--tiny-batch', type=int, default=8)
    parser.add_argument('--smolvla-batch', type=int, default=4)
    parser.add_argument('--skip-smolvla', action='store_true')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f'torch {torch.__version__}, threads {args.threads}, device {args.device}')
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # base: the dense model; moe_dense / moe_sparse: AdaMoE (E=4, top-1) with the dense / sparse expert path.
        variants = ['base', 'moe_dense', 'moe_sparse']
        tiny, tiny_models = {}, {}
        for v in variants:
            policy, pre, cfg = build_tiny(v, args.device, workdir)
            tiny_models[v] = policy
            tiny[v] = tiny_steps(policy, pre, cfg, args.device, args.tiny_batch)
        compare('tiny', variants, tiny, tiny_models, args.device, args.rounds, args.tiny_batch)
        del tiny, tiny_models
        if not args.skip_smolvla:
            expert_models = {v: build_expert(v, args.device) for v in variants}
            experts = {v: expert_steps(m, args.device, args.smolvla_batch) for v, m in expert_models.items()}
            compare('smolvla', variants, experts, expert_models, args.device, args.rounds, args.smolvla_batch)
    return 0


if __name__ == '__main__':
    sys.exit(main())
