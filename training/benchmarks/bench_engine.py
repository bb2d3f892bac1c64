"""Benchmark the runtime engine: ONNX Runtime vs PyTorch eager, AdaMoE vs dense base, GPU providers.

All ratios come from one run, measured side by side on the same machine and inputs:
  python training/benchmarks/bench_engine.py [--size tiny|small|base] [--repeats 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper, shape_inference

from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.bundle_writer import write_bundle
from lerobot_policy_adamoe.export.metadata import DatasetNames
from lerobot_policy_adamoe.export.reference import random_observation, torch_action_chunk
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy, untrained_stats
from lerobot_policy_adamoe.processor_adamoe import make_adamoe_pre_post_processors

# Backbone sizes: "tiny" is the demo bundle; "small"/"base" grow width and depth toward SmolVLA
# (SmolVLA itself: 960 wide, 16 VLM layers, 512x512 images: ~10 s per chunk in eager torch on this CPU).
SIZES = {
    'tiny': {},
    'small': {
        'text_hidden': 256,
        'text_intermediate': 1024,
        'layers': 4,
        'text_heads': 4,
        'text_kv_heads': 2,
        'vision_hidden': 128,
        'vision_intermediate': 512,
        'vision_layers': 4,
        'vision_heads': 4,
    },
    'base': {
        'text_hidden': 512,
        'text_intermediate': 2048,
        'layers': 8,
        'text_heads': 8,
        'text_kv_heads': 4,
        'vision_hidden': 256,
        'vision_intermediate': 1024,
        'vision_layers': 6,
        'vision_heads': 4,
    },
}


def median_ms(fn, repeats: int) -> float:
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def build(mode: str, size: str, folder: Path, expert_graph: str = 'sparse'):
    layers = SIZES[size].get('layers', 2)
    spec = UntrainedSpec(routing_mode=mode, backbone=SIZES[size], config_overrides={'num_vlm_layers': layers})
    policy = make_tiny_adamoe_policy(spec, folder / 'backbone')
    pre, post = make_adamoe_pre_post_processors(policy.config, untrained_stats(spec))
    names = DatasetNames([*spec.joint_names, *spec.extra_state_names], list(spec.joint_names), spec.fps)
    write_bundle(
        policy,
        folder / 'bundle',
        names,
        untrained_stats(spec),
        {'checkpoint': f'bench {mode} {size}'},
        expert_graph=expert_graph,
    )
    return policy, pre, post


def ffn_cost(policy, tokens: int) -> tuple[int, int, int]:
    """(FLOPs, fp32 bytes) of one dense gated FFN over `tokens` tokens, and the number of expert layers."""
    layers = policy.model.vlm_with_expert.lm_expert.layers
    mlp = layers[0].mlp
    d, h = mlp.gate_proj.in_features, mlp.gate_proj.out_features
    return 2 * tokens * 3 * d * h, 3 * d * h * 4, len(layers)


def _einsum_flops(equation: str, shapes: list[list[int]]) -> int:
    inputs = equation.replace(' ', '').split('->')[0].split(',')
    sizes: dict[str, int] = {}
    for letters, shape in zip(inputs, shapes, strict=True):
        sizes.update(zip(letters, shape, strict=True))
    return 2 * int(np.prod(list(sizes.values())))


def graph_cost(file: Path) -> tuple[float, float, float, float]:
    """(total matmul GFLOP, expert GFLOP, total weight MB, expert weight MB) of one graph run."""
    model = shape_inference.infer_shapes(onnx.load(str(file)))
    graph = model.graph
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.value_info, *graph.input, *graph.output]
    }
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    shapes.update({name: list(a.shape) for name, a in inits.items()})
    # Stacked routed experts have a leading num_experts axis; they are the only rank-3 weights in the graph.
    expert_weights = {name for name, a in inits.items() if a.ndim == 3}
    total = experts = 0.0
    for node in graph.node:
        if node.op_type not in ('MatMul', 'Gemm', 'Einsum'):
            continue
        ins = [shapes.get(n) for n in node.input[:2]]
        if any(s is None or 0 in s for s in ins):
            continue
        if node.op_type == 'Einsum':
            eq = next(a.s.decode() for a in node.attribute if a.name == 'equation')
            flops = _einsum_flops(eq, ins)
        else:
            a, b = ins
            flops = 2 * int(np.prod(a)) * b[-1]
        total += flops
        if any(n in expert_weights for n in node.input):
            experts += flops
    weight_bytes = sum(a.nbytes for a in inits.values())
    expert_bytes = sum(inits[n].nbytes for n in expert_weights)
    return total / 1e9, experts / 1e9, weight_bytes / 1e6, expert_bytes / 1e6


VARIANTS = (('dense', 'dense', 'sparse'), ('adamoe', 'adamoe', 'sparse'), ('adamoe-dense-graph', 'adamoe', 'dense'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--size', choices=list(SIZES), default='small')
    parser.add_argument('--repeats', type=int, default=10)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f'machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, onnxruntime '
        f'{ort.__version__}, threads {args.threads}, size {args.size}, median of {args.repeats}'
    )
    ort_ms: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, mode, expert_graph in VARIANTS:
            folder = Path(tmp) / name
            policy, pre, post = build(mode, args.size, folder, expert_graph)
            engine = PolicyEngine.from_bundle(
                folder / 'bundle', providers=['CPUExecutionProvider'], intra_op_threads=args.threads
            )
            obs = random_observation(engine, np.random.default_rng(0), 'pick up the red cube')
            noise = engine.infer(obs, noise_seed=0).noise
            # Interleave ORT and eager runs so machine-load drift hits both equally.
            ort_samples, torch_samples, stage_runs = [], [], []
            for _ in range(2):
                engine.infer(obs, noise=noise)
                torch_action_chunk(policy, pre, post, obs, noise)
            for _ in range(args.repeats):
                result = engine.infer(obs, noise=noise)
                ort_samples.append(result.timings['total'])
                stage_runs.append(result.timings)
                start = time.perf_counter()
                torch_action_chunk(policy, pre, post, obs, noise)
                torch_samples.append(time.perf_counter() - start)
            ort_ms[name] = statistics.median(ort_samples) * 1e3
            torch_ms = statistics.median(torch_samples) * 1e3
            stages = {k: statistics.median(r[k] for r in stage_runs) * 1e3 for k in stage_runs[0]}
            params = sum(p.numel() for p in policy.parameters()) / 1e6
            print(
                f'[{name}] {params:.1f} M params, {engine.spec.num_flow_steps} flow steps, horizon '
                f'{engine.spec.horizon}: ORT CPU {ort_ms[name]:.1f} ms/chunk (prefix {stages["prefix"]:.1f}, '
                f'denoise {stages["denoise"]:.1f}), PyTorch eager {torch_ms:.1f} ms/chunk -> ORT/eager '
                f'{ort_ms[name] / torch_ms:.2f}x (goal <= 0.5x)'
            )
            if name == 'dense':
                step_gflop = graph_cost(folder / 'bundle' / 'denoise.onnx')[0]
                ffn_flops, ffn_bytes, num_layers = ffn_cost(policy, engine.spec.horizon)
        print(
            f'AdaMoE (4 experts top-1 + shared) vs dense base, ORT CPU per chunk: '
            f'{ort_ms["adamoe"]:.1f} / {ort_ms["dense"]:.1f} ms = {ort_ms["adamoe"] / ort_ms["dense"]:.2f}x '
            f'(goal <= 1.3x); all-experts graph: {ort_ms["adamoe-dense-graph"] / ort_ms["dense"]:.2f}x'
        )
        experts = 4
        print(
            f'why (per denoise step, {num_layers} expert layers, {engine.spec.horizon} action tokens; whole dense '
            f'step {step_gflop * 1e3:.1f} MFLOP):'
        )
        print(
            f'  dense base FFN:            {num_layers * ffn_flops / 1e6:7.1f} MFLOP, '
            f'{num_layers * ffn_bytes / 1e6:6.2f} MB of FFN weights read'
        )
        print(
            f'  AdaMoE, unrolled top-1:    {num_layers * 2 * ffn_flops / 1e6:7.1f} MFLOP (shared + 1 routed), '
            f'<= {num_layers * (1 + experts) * ffn_bytes / 1e6:6.2f} MB (shared + every expert that got a token)'
        )
        print(
            f'  AdaMoE, all-experts graph: {num_layers * (1 + experts) * ffn_flops / 1e6:7.1f} MFLOP, '
            f'{num_layers * (1 + experts) * ffn_bytes / 1e6:6.2f} MB'
        )
        print(
            '  top-1 doubles the FFN FLOPs (shared + one routed expert); the bytes grow up to 5x, which matters '
            'once weights leave the cache (SmolVLA size, GPUs). Routing ops (softmax, top-k, NonZero, gathers) '
            'add per-layer overhead that dominates at these tiny sizes.'
        )
        gpu = [p for p in ('CUDAExecutionProvider', 'TensorrtExecutionProvider') if p in ort.get_available_providers()]
        if not gpu:
            print(f'CUDA/TensorRT: not available in this onnxruntime ({ort.get_available_providers()}); skipped')
        for provider in gpu:
            for name, _mode, _graph in VARIANTS:
                engine = PolicyEngine.from_bundle(
                    Path(tmp) / name / 'bundle', providers=[provider, 'CPUExecutionProvider']
                )
                obs = random_observation(engine, np.random.default_rng(0), 'pick up the red cube')
                ms = median_ms(lambda e=engine, o=obs: e.infer(o, noise_seed=0), args.repeats)
                print(f'[{name}] {provider}: {ms:.2f} ms per chunk')


if __name__ == '__main__':
    main()
