"""Real-size benchmark: export cost, ONNX Runtime vs PyTorch eager per chunk, AdaMoE vs dense, fp16 parity.

One run measures every variant of every size side by side on this machine; each variant and precision runs in
a process of its own, so its peak RSS is its own:
  python training/benchmarks/bench_real_size.py [--sizes tiny smolvla pi0_300m] [--chunks 3] [--threads 2]
      [--fp16 adamoe] [--out results/real_size] [--memory-gb N] [--calibration FILE]
A size is one entry of SIZES: a builder (routing mode, folder, device) -> (policy, interface), and whether its
family has fp16 bundles (PI bundles are fp32 only).

Memory: before a worker starts, its peak RSS is estimated as parameters x 4 bytes x the factor (peak RSS per
parameter byte) of the nearest smaller row measured so far: the committed run in --calibration, then this run's
rows. A row whose estimate exceeds --memory-gb (default: the memory available when it would start) is refused, not
started, and so is any row at least as large as one that was killed. Workers ask the kernel to kill them first
when memory runs out (oom_score_adj 1000), so an estimate that was too low costs that row, not someone else's
process.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import signal
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
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.pi0.configuration_pi0 import PI0Config
from onnx import TensorProto, helper

from adamoe_ros.engine import PolicyEngine
from lerobot_policy_adamoe.export.bundle_writer import half_precision_copy, write_bundle
from lerobot_policy_adamoe.export.metadata import DatasetNames
from lerobot_policy_adamoe.export.reference import random_observation, torch_action_chunk, torch_graph_action_chunk
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy, untrained_stats
from lerobot_policy_adamoe.real_size import PI0_VLM_VARIANTS, make_pi0_policy, pi0_config, pi0_interface, smolvla_spec
from lerobot_policy_adamoe.tiny_base import make_tiny_backbone
from lerobot_policy_adamoe.tiny_pi import make_tiny_pi_config

Built = tuple[torch.nn.Module, UntrainedSpec]  # an eval-mode random-init policy and its interface


def smolvla(spec: UntrainedSpec, folder: Path) -> Built:
    """SmolVLA-style policy (dense or AdaMoE) from an UntrainedSpec, on a backbone written to folder."""
    return make_tiny_adamoe_policy(spec, folder / 'backbone'), spec


def pi0(vlm_variant: str | None, mode: str, folder: Path, device: str) -> Built:
    """π0 with π0's interface (`real_size.py`); vlm_variant None is the test-only tiny PI size (`tiny_pi.py`).

    The real PaliGemma tokenizer is not available offline: the prompt is tokenised by the tiny SmolVLM backbone's
    tokenizer, as in the PI tests (its ids are valid PaliGemma ids), padded to PI0's own tokenizer_max_length.
    """
    tokenizer = make_tiny_backbone(folder / 'tokenizer')
    if vlm_variant is None:  # π0's state and action widths: the 14 joints do not fit the tiny size's 8
        dims = {'max_state_dim': PI0Config.max_state_dim, 'max_action_dim': PI0Config.max_action_dim}
        config = make_tiny_pi_config('pi0', tokenizer, routing_mode=mode, **dims)
    else:
        config = pi0_config(mode, paligemma_variant=vlm_variant, tokenizer_name=str(tokenizer))
    if device == 'meta':  # shapes only: skip drawing the routed experts' upcycling noise (seconds of randn)
        config.noise_std = 0.0
    config.device = device  # after LeRobot's validation, which only knows real devices
    spec = pi0_interface(config.image_resolution)
    return make_pi0_policy(config, spec), spec


@dataclass(frozen=True)
class Size:
    """A benchmark size: its builder (routing mode, folder, device) and whether its bundles come in fp16."""

    build: Callable[[str, Path, str], Built]
    fp16: bool = True


SIZES = {
    'tiny': Size(lambda mode, folder, _: smolvla(UntrainedSpec(routing_mode=mode), folder)),  # the demo's shape
    'smolvla': Size(lambda mode, folder, _: smolvla(smolvla_spec(mode), folder)),  # SmolVLM2-500M, 16 layers, 512 px
    'pi0_tiny': Size(lambda mode, folder, device: pi0(None, mode, folder, device), fp16=False),  # test size, 3 cameras
    # PaliGemma at gemma_300m (1.3 B dense) and the real π0's gemma_2b (3.2 B): SigLIP So400m, 3 cameras at 224 px.
    **{
        name: Size(lambda mode, folder, device, vlm=vlm: pi0(vlm, mode, folder, device), fp16=False)
        for name, vlm in PI0_VLM_VARIANTS.items()
    },
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
        policy, spec = SIZES[size].build(VARIANTS[variant], Path(tmp), 'cpu')
        stats = untrained_stats(spec)
        pre, post = make_pre_post_processors(policy.config, dataset_stats=stats)
        names = DatasetNames([*spec.joint_names, *spec.extra_state_names], list(spec.joint_names), spec.fps)
        row['build_s'] = time.perf_counter() - start
        row['params_m'] = sum(p.numel() for p in policy.parameters()) / 1e6
        start = time.perf_counter()
        bundle = Path(tmp) / 'bundle'
        source = {'checkpoint': 'random init (benchmark)'}
        write_bundle(policy, bundle, names, stats, source, fp16=precision == 'fp16', preprocessor=pre)
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
        eager = torch_action_chunk(policy, pre, post, observation, noise)
        actions = engine.infer(observation, noise=noise).actions
        row['max_abs_vs_eager_fp32'] = float(np.abs(actions - eager).max())
        row['max_abs_action'] = float(np.abs(eager).max())
        if precision == 'fp16':
            # The same graph modules run by PyTorch in float16, and how far float16 itself moves PyTorch.
            eager_fp16 = torch_graph_action_chunk(half_precision_copy(policy), engine, observation, noise)
            row['max_abs_vs_eager_fp16'] = float(np.abs(actions - eager_fp16).max())
            row['max_abs_eager_fp16_vs_fp32'] = float(np.abs(eager_fp16 - eager).max())
        ort_runs, eager_s = [], []
        for _ in range(chunks):  # interleaved, so load drift hits both alike
            ort_runs.append(engine.infer(observation, noise=noise).timings)
            if precision == 'fp32':  # the fp16 row is compared with its fp32 row's eager time
                start = time.perf_counter()
                torch_action_chunk(policy, pre, post, observation, noise)
                eager_s.append(time.perf_counter() - start)
        for stage in ('total', 'prefix', 'denoise'):
            row[f'ort_{stage}_ms'] = statistics.median(r[stage] for r in ort_runs) * 1e3
        if eager_s:
            row['eager_ms'] = statistics.median(eager_s) * 1e3
    row['peak_rss_gb'] = peak_rss_gb()
    return row


PARAM_BYTES = 4  # every size is built in float32 (an fp16 row exports a float16 copy of it)
# A row with fewer parameter bytes is mostly the interpreter and its libraries, so it calibrates nothing.
MIN_CALIBRATION_GIB = 1.0
CALIBRATION = Path(__file__).resolve().parents[2] / 'results' / 'real_size' / 'real_size.json'
MEASURED = 'measured'


def param_gib(params_m: float) -> float:
    """GiB that many million float32 parameters take."""
    return params_m * 1e6 * PARAM_BYTES / 1024**3


def machine_memory_gib() -> float:
    """Physical memory of this machine."""
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1024**3


def available_memory_gib() -> float:
    """Memory a new process can take now without swapping (the kernel's MemAvailable), in GiB."""
    fields = dict(line.split(':', 1) for line in Path('/proc/meminfo').read_text().splitlines())
    return int(fields['MemAvailable'].split()[0]) / 1024**2  # kB


def meta_params_m(size: str, mode: str) -> float:
    """Million parameters of a size's policy, built on the meta device (no memory, no initialisation)."""
    with tempfile.TemporaryDirectory(prefix='bench_real_size_meta_') as tmp, torch.device('meta'):
        policy, _ = SIZES[size].build(mode, Path(tmp), 'meta')
        return sum(p.numel() for p in policy.parameters()) / 1e6


@dataclass(frozen=True)
class Estimate:
    """A worker's estimated peak RSS: its parameter bytes x the peak RSS per parameter byte of a measured row."""

    peak_gib: float
    factor: float
    basis: str  # the measured row the factor comes from


def estimate_peak(params_m: float, precision: str, measured: list[dict[str, Any]]) -> Estimate | None:
    """Scale the nearest measured row of this precision, the nearest smaller one if any; None without one."""
    usable = [
        r
        for r in measured
        if r['precision'] == precision and 'peak_rss_gb' in r and param_gib(r['params_m']) >= MIN_CALIBRATION_GIB
    ]
    if not usable:
        return None
    smaller = [r for r in usable if r['params_m'] <= params_m]
    basis = max(smaller, key=lambda r: r['params_m']) if smaller else min(usable, key=lambda r: r['params_m'])
    factor = basis['peak_rss_gb'] / param_gib(basis['params_m'])
    name = f'{basis["size"]} {basis["variant"]} {precision}, {basis["params_m"]:.0f} M'
    return Estimate(factor * param_gib(params_m), factor, name)


def refusal(params_m: float, estimate: Estimate | None, memory_gib: float, killed: list[dict[str, Any]]) -> str | None:
    """Why a worker must not start (None: it may): a row no larger was killed, or the estimate exceeds memory."""
    for row in killed:
        if params_m >= row['params_m']:
            return f'a row no larger ({row["size"]} {row["variant"]} {row["precision"]}) was killed'
    if estimate and estimate.peak_gib > memory_gib:
        return (
            f'estimated peak RSS {estimate.peak_gib:.1f} GiB ({param_gib(params_m):.2f} GiB of float32 parameters x '
            f'{estimate.factor:.2f}, the peak per parameter byte of {estimate.basis}) exceeds the {memory_gib:.1f} '
            'GiB of memory available (--memory-gb)'
        )
    return None


def table(rows: list[dict[str, Any]], header: str) -> str:
    """Markdown tables: every size, variant and precision; ratios against the same size's fp32 dense base."""
    others = [r for r in rows if r['status'] != MEASURED]
    rows = [r for r in rows if r['status'] == MEASURED]
    fp32 = {(r['size'], r['variant']): r for r in rows if r['precision'] == 'fp32'}
    lines = [
        header,
        '',
        '| size | variant | precision | params | bundle | export s (peak RSS) | ORT ms/chunk (prefix + denoise) '
        '| eager fp32 ms/chunk | ORT/eager | vs dense: ORT / eager | max abs ORT - eager fp32 | peak RSS (estimate) |',
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
        estimated = f'{r["estimated_peak_rss_gb"]:.1f}' if 'estimated_peak_rss_gb' in r else '-'
        lines.append(
            f'| {r["size"]} | {LABELS[r["variant"]]} | {r["precision"]} | {r["params_m"]:.1f} M '
            f'| {bundle}{external} | {r["export_s"]:.0f} ({r["export_peak_rss_gb"]:.1f} GB) '
            f'| {r["ort_total_ms"]:.0f} ({r["ort_prefix_ms"]:.0f} + {r["ort_denoise_ms"]:.0f}) | {eager_ms:.0f} '
            f'| {r["ort_total_ms"] / eager_ms:.2f}x | {versus} | {r["max_abs_vs_eager_fp32"]:.1e} '
            f'| {r["peak_rss_gb"]:.1f} GB ({estimated}) |'
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
    if others:
        lines += ['', 'Not measured:']
        lines += [
            f'- {r["size"]} {LABELS[r["variant"]]} {r["precision"]} ({r["params_m"]:.1f} M): {r["status"]}'
            for r in others
        ]
    return '\n'.join(lines)


def run_worker(size: str, variant: str, precision: str, args: argparse.Namespace, result: Path) -> int:
    """Run one worker process; return its exit status (negative: the signal that ended it)."""
    command = [sys.executable, __file__, '--worker', size, variant, precision, '--result', str(result)]
    command += ['--chunks', str(args.chunks), '--threads', str(args.threads)]
    return subprocess.run(command).returncode


def main(argv: list[str] | None = None) -> int:
    """Measure the requested rows (or run one worker); return 1 if a worker failed, else 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', choices=list(SIZES), default=['tiny', 'smolvla'])
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--chunks', type=int, default=3, help='timed chunks per variant (median), after a warm-up')
    parser.add_argument('--threads', type=int, default=2, help='torch and ONNX Runtime intra-op threads')
    parser.add_argument('--fp16', nargs='*', choices=list(VARIANTS), default=['adamoe'], help='variants also in fp16')
    parser.add_argument('--out', type=Path, help='write <out>/real_size.md and .json (after every row)')
    parser.add_argument(
        '--memory-gb', type=float, help="GiB a worker's estimated peak RSS must fit (default: available when it starts)"
    )
    parser.add_argument('--calibration', type=Path, default=CALIBRATION, help='a real_size.json whose rows calibrate')
    parser.add_argument('--worker', nargs=3, metavar=('SIZE', 'VARIANT', 'PRECISION'), help=argparse.SUPPRESS)
    parser.add_argument('--result', type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        Path('/proc/self/oom_score_adj').write_text('1000')  # out of memory, the kernel kills this process first
        size, variant, precision = args.worker
        args.result.write_text(json.dumps(worker(size, variant, precision, args.chunks, args.threads)))
        return 0
    started = time.perf_counter()
    calibration = json.loads(args.calibration.read_text())['rows']
    header = (
        f'{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} CPUs, '
        f'{machine_memory_gib():.1f} GiB, {args.threads} threads (torch and ONNX Runtime), torch {torch.__version__}, '
        f'onnxruntime {ort.__version__} CPUExecutionProvider, onnx {onnx.__version__}; median of {args.chunks} chunks '
        f'after a warm-up; random init; bf16 MatMul on the CPU provider: {bf16_support()}'
    )
    print(header, flush=True)
    rows: list[dict[str, Any]] = []
    killed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            if not SIZES[size].fp16 and args.fp16:
                print(f'[{size}] fp32 only: its bundles have no fp16 export', flush=True)
            for variant in args.variants:
                params_m = meta_params_m(size, VARIANTS[variant])
                for precision in ('fp32', 'fp16') if variant in args.fp16 and SIZES[size].fp16 else ('fp32',):
                    row: dict[str, Any] = {'size': size, 'variant': variant, 'precision': precision}
                    row['params_m'] = params_m
                    estimate = estimate_peak(params_m, precision, [*calibration, *rows])
                    if estimate:
                        row |= {'estimated_peak_rss_gb': estimate.peak_gib, 'estimate_basis': estimate.basis}
                    row['memory_gb'] = args.memory_gb or available_memory_gib()
                    reason = refusal(params_m, estimate, row['memory_gb'], killed)
                    if reason:
                        row['status'] = f'not started: {reason}'
                    else:
                        result = Path(tmp) / f'{size}_{variant}_{precision}.json'
                        status = run_worker(size, variant, precision, args, result)
                        if status == 0:
                            row |= json.loads(result.read_text()) | {'status': MEASURED}
                        elif status == -signal.SIGKILL:
                            row['status'] = 'killed (SIGKILL: out of memory, most likely)'
                            killed.append(row)
                        else:
                            row['status'] = f'failed: exit status {status}'
                    rows.append(row)
                    print(f'[{size} {variant} {precision}] {json.dumps(row)}', flush=True)
                    if args.out:
                        write_results(args.out, table(rows, header), header, rows)
    text = table(rows, header) + f'\n\nwhole run: {(time.perf_counter() - started) / 60:.1f} min\n'
    print(text)
    if args.out:
        write_results(args.out, text, header, rows)
    return int(any(r['status'] != MEASURED and not r['status'].startswith('not started') for r in rows))


def write_results(out: Path, text: str, header: str, rows: list[dict[str, Any]]) -> None:
    """Write <out>/real_size.md (the tables) and real_size.json (every row)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / 'real_size.md').write_text(text)
    (out / 'real_size.json').write_text(json.dumps({'header': header, 'rows': rows}, indent=2) + '\n')


if __name__ == '__main__':
    sys.exit(main())
