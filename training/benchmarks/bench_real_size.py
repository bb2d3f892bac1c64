"""Real-size benchmark: export cost, ONNX Runtime vs PyTorch eager per chunk, AdaMoE vs dense, fp16 parity.

One run measures every variant of every size side by side on this machine; each variant and precision runs in
a process of its own, so its peak RSS is its own:
  python training/benchmarks/bench_real_size.py [--sizes tiny smolvla] [--chunks 3] [--threads 2]
      [--fp16 adamoe] [--out results/real_size]
A size is one entry of SIZES: a function (routing mode, folder) -> BenchModel.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper

from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.bundle_writer import half_precision_copy, write_bundle
from lerobot_policy_adamoe.export.metadata import DatasetNames
from lerobot_policy_adamoe.export.reference import random_observation, torch_action_chunk, torch_graph_action_chunk
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy, untrained_stats
from lerobot_policy_adamoe.processor_adamoe import make_adamoe_pre_post_processors
from lerobot_policy_adamoe.real_size import smolvla_spec


@dataclass
class BenchModel:
    """A random-init policy with what an export and a LeRobot eager run need."""

    policy: torch.nn.Module
    preprocessor: Any
    postprocessor: Any
    names: DatasetNames
    stats: dict[str, dict[str, torch.Tensor]]


def smolvla_model(spec: UntrainedSpec, folder: Path) -> BenchModel:
    """SmolVLA-style policy (dense or AdaMoE) from an UntrainedSpec, on a backbone written to folder."""
    policy = make_tiny_adamoe_policy(spec, folder / 'backbone')
    stats = untrained_stats(spec)
    pre, post = make_adamoe_pre_post_processors(policy.config, stats)
    names = DatasetNames([*spec.joint_names, *spec.extra_state_names], list(spec.joint_names), spec.fps)
    return BenchModel(policy, pre, post, names, stats)


SIZES: dict[str, Callable[[str, Path], BenchModel]] = {
    'tiny': lambda mode, folder: smolvla_model(UntrainedSpec(routing_mode=mode), folder),  # the demo's shape
    'smolvla': lambda mode, folder: smolvla_model(smolvla_spec(mode), folder),  # SmolVLM2-500M, 16 layers, 512 px
}
# (name, routing mode): the dense base and the two routings, 4 routed experts top-1 (+ shared expert for adamoe).
VARIANTS = {'dense': 'dense', 'adamoe': 'adamoe', 'vanilla': 'vanilla'}
LABELS = {'dense': 'dense base', 'adamoe': 'AdaMoE top-1', 'vanilla': 'vanilla top-1'}


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bf16_support() -> str:
    """Whether this onnxruntime's CPU provider runs a bfloat16 MatMul (the op a bf16 bundle is made of)."""
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['a', 'b'], ['c'])],
        'bf16',
        [helper.make_tensor_value_info(n, TensorProto.BFLOAT16, [2, 2]) for n in 'ab'],
        [helper.make_tensor_value_info('c', TensorProto.BFLOAT16, [2, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    try:
        ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
    except Exception as exc:  # onnxruntime raises its own classes for a missing kernel
        return f'no: {str(exc).strip().splitlines()[0][:160]}'
    return 'yes'


def worker(size: str, variant: str, precision: str, chunks: int, threads: int) -> dict[str, Any]:
    """Build, export, load and time one variant of one size in one precision (in a process of its own)."""
    torch.set_num_threads(threads)
    row: dict[str, Any] = {'size': size, 'variant': variant, 'precision': precision}
    with tempfile.TemporaryDirectory(prefix='bench_real_size_') as tmp:
        start = time.perf_counter()
        model = SIZES[size](VARIANTS[variant], Path(tmp))
        row['build_s'] = time.perf_counter() - start
        row['params_m'] = sum(p.numel() for p in model.policy.parameters()) / 1e6
        start = time.perf_counter()
        bundle = Path(tmp) / 'bundle'
        source = {'checkpoint': 'random init (benchmark)'}
        write_bundle(model.policy, bundle, model.names, model.stats, source, fp16=precision == 'fp16')
        row['export_s'] = time.perf_counter() - start
        row['export_peak_rss_gb'] = peak_rss_gb()  # building + exporting: nothing else has run in this process
        row['bundle_gb'] = sum(f.stat().st_size for f in bundle.iterdir() if f.is_file()) / 1e9
        start = time.perf_counter()
        engine = PolicyEngine.from_bundle(bundle, ['CPUExecutionProvider'], intra_op_threads=threads)
        row['load_s'] = time.perf_counter() - start  # hash check, sessions, one warm-up chunk
        row['external_data'] = bool(engine.spec.external_data)
        observation = random_observation(engine, np.random.default_rng(0), 'pick up the red cube')
        noise = engine.infer(observation, noise_seed=0).noise
        # The untimed first eager chunk warms PyTorch up and is the fp32 parity reference (LeRobot's own path).
        eager = torch_action_chunk(model.policy, model.preprocessor, model.postprocessor, observation, noise)
        actions = engine.infer(observation, noise=noise).actions
        row['max_abs_vs_eager_fp32'] = float(np.abs(actions - eager).max())
        row['max_abs_action'] = float(np.abs(eager).max())
        if precision == 'fp16':
            # The same graph modules run by PyTorch in float16, and how far float16 itself moves PyTorch.
            eager_fp16 = torch_graph_action_chunk(half_precision_copy(model.policy), engine, observation, noise)
            row['max_abs_vs_eager_fp16'] = float(np.abs(actions - eager_fp16).max())
            row['max_abs_eager_fp16_vs_fp32'] = float(np.abs(eager_fp16 - eager).max())
        ort_runs, eager_s = [], []
        for _ in range(chunks):  # interleaved, so load drift hits both alike
            ort_runs.append(engine.infer(observation, noise=noise).timings)
            if precision == 'fp32':  # the fp16 row is compared with its fp32 row's eager time
                start = time.perf_counter()
                torch_action_chunk(model.policy, model.preprocessor, model.postprocessor, observation, noise)
                eager_s.append(time.perf_counter() - start)
        for stage in ('total', 'prefix', 'denoise'):
            row[f'ort_{stage}_ms'] = statistics.median(r[stage] for r in ort_runs) * 1e3
        if eager_s:
            row['eager_ms'] = statistics.median(eager_s) * 1e3
    row['peak_rss_gb'] = peak_rss_gb()
    return row


def table(rows: list[dict[str, Any]], header: str) -> str:
    """Markdown tables: every size, variant and precision; ratios against the same size's fp32 dense base."""
    fp32 = {(r['size'], r['variant']): r for r in rows if r['precision'] == 'fp32'}
    lines = [
        header,
        '',
        '| size | variant | precision | params | bundle | export s (peak RSS) | ORT ms/chunk (prefix + denoise) '
        '| eager fp32 ms/chunk | ORT/eager | vs dense: ORT / eager | max abs ORT - eager fp32 | peak RSS |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for r in rows:
        dense = fp32.get((r['size'], 'dense'))
        eager_ms = r.get('eager_ms', fp32.get((r['size'], r['variant']), {}).get('eager_ms', float('nan')))
        versus = '-'
        if dense and r['precision'] == 'fp32':
            versus = f'{r["ort_total_ms"] / dense["ort_total_ms"]:.2f}x / {eager_ms / dense["eager_ms"]:.2f}x'
        external = ', external data' if r['external_data'] else ''
        bundle = f'{r["bundle_gb"]:.2f} GB' if r['bundle_gb'] >= 0.1 else f'{r["bundle_gb"] * 1e3:.1f} MB'
        lines.append(
            f'| {r["size"]} | {LABELS[r["variant"]]} | {r["precision"]} | {r["params_m"]:.1f} M '
            f'| {bundle}{external} | {r["export_s"]:.0f} ({r["export_peak_rss_gb"]:.1f} GB) '
            f'| {r["ort_total_ms"]:.0f} ({r["ort_prefix_ms"]:.0f} + {r["ort_denoise_ms"]:.0f}) | {eager_ms:.0f} '
            f'| {r["ort_total_ms"] / eager_ms:.2f}x | {versus} | {r["max_abs_vs_eager_fp32"]:.1e} '
            f'| {r["peak_rss_gb"]:.1f} GB |'
        )
    half = [r for r in rows if r['precision'] == 'fp16']
    if half:
        lines += [
            '',
            '| size | variant | ORT fp16 / fp32 | max abs ORT fp16 - eager fp32 | - eager fp16 (same graphs) '
            '| eager fp16 - eager fp32 | max abs action |',
            '| --- | --- | --- | --- | --- | --- | --- |',
        ]
        for r in half:
            full = fp32.get((r['size'], r['variant']))
            speed = f'{r["ort_total_ms"] / full["ort_total_ms"]:.2f}x' if full else '-'
            lines.append(
                f'| {r["size"]} | {LABELS[r["variant"]]} | {speed} | {r["max_abs_vs_eager_fp32"]:.1e} '
                f'| {r["max_abs_vs_eager_fp16"]:.1e} | {r["max_abs_eager_fp16_vs_fp32"]:.1e} '
                f'| {r["max_abs_action"]:.2f} |'
            )
    return '\n'.join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', choices=list(SIZES), default=['tiny', 'smolvla'])
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--chunks', type=int, default=3, help='timed chunks per variant (median), after a warm-up')
    parser.add_argument('--threads', type=int, default=2, help='torch and ONNX Runtime intra-op threads')
    parser.add_argument('--fp16', nargs='*', choices=list(VARIANTS), default=['adamoe'], help='variants also in fp16')
    parser.add_argument('--out', type=Path, help='write <out>/real_size.md and .json')
    parser.add_argument('--worker', nargs=3, metavar=('SIZE', 'VARIANT', 'PRECISION'), help=argparse.SUPPRESS)
    parser.add_argument('--result', type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        size, variant, precision = args.worker
        args.result.write_text(json.dumps(worker(size, variant, precision, args.chunks, args.threads)))
        return
    started = time.perf_counter()
    header = (
        f'{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, '
        f'{args.threads} threads (torch and ONNX Runtime), torch {torch.__version__}, onnxruntime {ort.__version__} '
        f'CPUExecutionProvider, onnx {onnx.__version__}; median of {args.chunks} chunks after a warm-up; random '
        f'init; bf16 MatMul on the CPU provider: {bf16_support()}'
    )
    print(header, flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            for variant in args.variants:
                for precision in ('fp32', 'fp16') if variant in args.fp16 else ('fp32',):
                    result = Path(tmp) / f'{size}_{variant}_{precision}.json'
                    command = [sys.executable, __file__, '--worker', size, variant, precision, '--result', str(result)]
                    command += ['--chunks', str(args.chunks), '--threads', str(args.threads)]
                    subprocess.run(command, check=True)
                    rows.append(json.loads(result.read_text()))
                    print(f'[{size} {variant} {precision}] {json.dumps(rows[-1])}', flush=True)
    text = table(rows, header) + f'\n\nwhole run: {(time.perf_counter() - started) / 60:.1f} min\n'
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / 'real_size.md').write_text(text)
        (args.out / 'real_size.json').write_text(json.dumps({'header': header, 'rows': rows}, indent=2) + '\n')


if __name__ == '__main__':
    main()
