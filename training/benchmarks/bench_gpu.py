"""GPU benchmark: ms per action chunk (p50 / p99) of SmolVLA-size and π0-size AdaMoE top-1 against the dense base.

A chunk is what serving a bundle computes: the prefix graph once (images + instruction + state -> K/V cache), then
the flow steps (10 at real size) of the denoise graph (x_t, t, cache -> velocity + routing), batch 1, inputs from
and the chunk back to the host. Rows: size x model x variant (dense base / AdaMoE top-1 with 4 routed experts and
the shared one, random init) x 2 and 3 cameras x path:
- torch: PyTorch on the device running the two graph modules a bundle holds (export/graphs.py PrefixGraph and
  DenoiseStepGraph; pi_graphs.py for π0) in bf16: SmolVLA cast as for its fp16 bundle (action_out_proj fp32), π0
  in LeRobot's own bf16 layout (vision tower and norms fp32). Modes: eager; `cudagraphs` (torch.compile backend
  'cudagraphs': dynamo's graphs replayed as CUDA graphs, no inductor, the quicker to set up); `reduce-overhead`
  (torch.compile mode='reduce-overhead': inductor kernels + CUDA graphs, longer compiles; not run by default). On
  a GPU the MoE layers take their static-shape all-experts path below 256 tokens (moe.py). AdaMoE's routing capture
  (a ContextVar) breaks dynamo's graph at every MoE layer, so a compiled AdaMoE step is several CUDA graphs where
  dense is one: the summary prints both graph counts, and the eager ratio is the like-for-like one.
- ort: the runtime engine (PolicyEngine: preprocessing, IO binding, fp16 bundle) on ONNX Runtime's TensorRT and
  CUDA execution providers where onnxruntime-gpu provides them (on --device cpu: the CPU provider). SmolVLA only:
  this branch exports no π0 bundle.
Goals (issue 11, one H100/H200-class GPU): SmolVLA-size AdaMoE <= 15 ms per chunk, π0-size AdaMoE <= 30 ms with
3 cameras, AdaMoE <= 1.15x dense (p50); printed beside the figures for the real sizes.

On a GPU machine with PyTorch + CUDA (the lent H200 has no onnxruntime-gpu), in one go of under 10 minutes: rows
run cheapest mode first, so eager rows all come before compiled ones; a row that would start after --budget-min is
skipped and listed; the JSON is rewritten after every row. Besides PyTorch it needs this repository's training
environment (lerobot 0.6.1 with what it imports, transformers 5.5); from the repository root:
  export PYTHONPATH=adamoe_contract:adamoe_ros:training
  python training/benchmarks/bench_gpu.py --out results/gpu/bench_gpu.json
Without a CUDA device it says so in one line and exits 0. At the test size on the CPU (training/tests):
  python training/benchmarks/bench_gpu.py --device cpu --sizes tiny --chunks 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch._dynamo.utils import counters

GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
MODELS = ('smolvla', 'pi0')
VARIANTS = ('dense', 'adamoe')  # routing modes; adamoe: 4 routed experts top-1 + the shared expert
MODES = ('eager', 'cudagraphs', 'reduce-overhead')
# Models the ort path can export as a bundle: pi_graphs.py writes π0's fp32 graphs, but no π0 bundle yet.
ORT_MODELS = ('smolvla',)
CUDA_MODES = ('cudagraphs', 'reduce-overhead')
# (model, cameras) in the order rows run: the configurations the goals name first.
PRIORITY = (('smolvla', 2), ('pi0', 3), ('smolvla', 3), ('pi0', 2))
# Goals at the real sizes: model -> (AdaMoE ms per chunk, the camera count it is for or None for any).
MS_GOALS = {'smolvla': (15.0, None), 'pi0': (30.0, 3)}
RATIO_GOAL = 1.15
DTYPES = {'bf16': torch.bfloat16, 'fp32': torch.float32}


@dataclasses.dataclass
class Graphs:
    """A policy's two bundle graph modules and the host inputs of one chunk for a camera count."""

    prefix: torch.nn.Module
    denoise: torch.nn.Module
    prefix_inputs: list[torch.Tensor]
    state: list[torch.Tensor]  # the denoise graph's leading state input (π0), else empty
    noise: torch.Tensor
    flow_steps: int


def build_policy(model: str, size: str, variant: str, folder: Path, device: str, dtype: torch.dtype) -> Any:
    """Random-init policy of one model, size and variant, built on `device` in `dtype` (see the module docstring)."""
    from lerobot_policy_adamoe.export.bundle_writer import half_precision_copy
    from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy
    from lerobot_policy_adamoe.modeling_adamoe_pi import AdaMoEPI0Policy
    from lerobot_policy_adamoe.real_size import pi0_config, smolvla_spec
    from lerobot_policy_adamoe.tiny_pi import make_tiny_pi_config

    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: the π0 sizes take minutes on a CPU
        if model == 'smolvla':
            spec = smolvla_spec(variant) if size == 'real' else UntrainedSpec(routing_mode=variant)
            spec = dataclasses.replace(spec, config_overrides={**spec.config_overrides, 'device': device})
            policy = make_tiny_adamoe_policy(spec, folder / f'backbone_{variant}')
            return policy if dtype == torch.float32 else half_precision_copy(policy, dtype).eval()
        precision = {'dtype': 'bfloat16' if dtype == torch.bfloat16 else 'float32', 'device': device}
        if size == 'real':
            config = pi0_config(variant, **precision)
        else:  # the tokenizer is only read by the processors, which the graphs do not use
            config = make_tiny_pi_config('pi0', 'unused', routing_mode=variant, **precision)
        return AdaMoEPI0Policy(config).eval()


@contextlib.contextmanager
def graph_modules(policy: Any, model: str, cameras: int) -> Iterator[Graphs]:
    """The policy's bundle graph modules for `cameras` images, and random host inputs shaped as the bundle's."""
    from adamoe_contract import bundle_format as fmt
    from lerobot_policy_adamoe.export.graphs import DenoiseStepGraph, PrefixGraph, traceable_vision
    from lerobot_policy_adamoe.export.onnx_export import example_language_inputs
    from lerobot_policy_adamoe.export.pi_graphs import PiDenoiseStepGraph, PiPrefixGraph

    flow, config = policy.model, policy.config
    dtype = flow.action_in_proj.weight.dtype  # the float inputs' dtype: bf16 SmolVLA takes bf16, π0 casts itself
    gen = torch.Generator().manual_seed(0)
    language = example_language_inputs(config.tokenizer_max_length, gen)
    state = torch.randn(1, config.max_state_dim, generator=gen).to(dtype)
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=gen)
    if model == 'smolvla':
        width, height = config.resize_imgs_with_padding
        prefix, make_denoise, steps = PrefixGraph(flow, cameras), DenoiseStepGraph, config.num_steps
        context = traceable_vision(flow, (height, width))  # as the bundle's prefix graph was traced
        prefix_state, denoise_state = [state], []
    else:
        height, width = config.image_resolution
        prefix, make_denoise, steps = PiPrefixGraph(flow, cameras), PiDenoiseStepGraph, config.num_inference_steps
        context, prefix_state, denoise_state = contextlib.nullcontext(), [], [state]
    images = [(torch.rand(1, 3, height, width, generator=gen) * 2 - 1).to(dtype) for _ in range(cameras)]
    prefix_inputs = [*images, language[fmt.LANG_TOKENS], language[fmt.LANG_MASK], *prefix_state]
    device = next(policy.parameters()).device
    with context:
        with torch.no_grad():
            num_layers = (len(prefix.eval()(*(x.to(device) for x in prefix_inputs))) - 1) // 2
        yield Graphs(prefix, make_denoise(flow, num_layers).eval(), prefix_inputs, denoise_state, noise, steps)


class TorchChunk:
    """One chunk in PyTorch: host inputs to the device, prefix once, Euler over the denoise graph, chunk to the host.

    The Euler loop is the engine's (engine/flow.py without RTC): t from 1 to 0, x <- x + dt * v, x in float32.
    """

    def __init__(self, graphs: Graphs, mode: str, device: torch.device) -> None:
        self.graphs, self.device = graphs, device
        self.compiled = mode != 'eager'
        self.prefix, self.denoise = graphs.prefix, graphs.denoise
        if mode == 'cudagraphs':
            self.prefix, self.denoise = (torch.compile(m, backend='cudagraphs') for m in (self.prefix, self.denoise))
        elif mode == 'reduce-overhead':
            self.prefix, self.denoise = (torch.compile(m, mode='reduce-overhead') for m in (self.prefix, self.denoise))
        self.dtype = graphs.prefix_inputs[0].dtype

    @torch.no_grad()
    def __call__(self) -> torch.Tensor:
        """Run one chunk; return it (normalised, padded) on the host."""
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()  # the last chunk's graph outputs may be overwritten
        graphs, device = self.graphs, self.device
        pad_mask, *cache = self.prefix(*(x.to(device) for x in graphs.prefix_inputs))
        state = [x.to(device) for x in graphs.state]
        x_t = graphs.noise.to(device)
        dt = -1.0 / graphs.flow_steps
        for step in range(graphs.flow_steps):
            t = torch.full((1,), 1.0 + step * dt, dtype=self.dtype, device=device)
            velocity = self.denoise(x_t.to(self.dtype), t, *state, pad_mask, *cache)[0]
            x_t = x_t + dt * velocity.float()
        return x_t.cpu()


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile of a list of durations in seconds, in milliseconds (linear interpolation)."""
    ordered = sorted(seconds)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return 1e3 * (ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def timed(run: Callable[[], Any], warmup: int, chunks: int) -> dict[str, float]:
    """Warm up (compiling and capturing happen here), then time `chunks` runs one by one."""
    start = time.perf_counter()
    for _ in range(warmup):
        run()
    setup_s = time.perf_counter() - start
    seconds = []
    for _ in range(chunks):
        start = time.perf_counter()
        run()  # returns the chunk on the host: the device work is finished
        seconds.append(time.perf_counter() - start)
    return {'p50_ms': percentile_ms(seconds, 50), 'p99_ms': percentile_ms(seconds, 99), 'setup_s': setup_s}


def torch_row(policy: Any, model: str, cameras: int, mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """Time one PyTorch row."""
    torch._dynamo.reset()  # each row compiles its own graphs; no recompile limits carried over
    counters.clear()
    with graph_modules(policy, model, cameras) as graphs:
        measured = timed(TorchChunk(graphs, mode, torch.device(args.device)), args.warmup, args.chunks)
    if mode != 'eager':
        # Dynamo graphs for prefix + denoise: each graph break (AdaMoE's routing capture, moe.py) adds one.
        measured['dynamo_graphs'] = counters['stats']['unique_graphs']
    return {**measured, 'flow_steps': graphs.flow_steps, 'horizon': graphs.noise.shape[1]}


def ort_row(model: str, size: str, variant: str, cameras: int, provider: str, args: argparse.Namespace) -> dict:
    """Export an fp16 bundle (SmolVLA, on the CPU) and time the runtime engine on one execution provider."""
    import numpy as np

    from adamoe_contract.robots import load_robot_profile
    from adamoe_ros.engine import PolicyEngine
    from lerobot_policy_adamoe.export.bundle_writer import write_bundle
    from lerobot_policy_adamoe.export.metadata import DatasetNames
    from lerobot_policy_adamoe.export.reference import random_observation
    from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_tiny_adamoe_policy, untrained_stats
    from lerobot_policy_adamoe.real_size import smolvla_spec

    spec = smolvla_spec(variant) if size == 'real' else UntrainedSpec(routing_mode=variant)
    spec = dataclasses.replace(spec, cameras=(*load_robot_profile('so101').camera_names, 'side')[:cameras])
    with tempfile.TemporaryDirectory(prefix='bench_gpu_') as tmp:
        torch.manual_seed(0)
        policy = make_tiny_adamoe_policy(spec, Path(tmp) / 'backbone')
        names = DatasetNames([*spec.joint_names, *spec.extra_state_names], list(spec.joint_names), spec.fps)
        write_bundle(policy, Path(tmp) / 'bundle', names, untrained_stats(spec), {}, fp16=True)
        del policy
        # TensorRT hands the nodes it cannot build to CUDA, not to the CPU.
        providers = list(GPU_PROVIDERS[GPU_PROVIDERS.index(provider) :]) if provider in GPU_PROVIDERS else [provider]
        engine = PolicyEngine.from_bundle(Path(tmp) / 'bundle', providers=providers)
        observation = random_observation(engine, np.random.default_rng(0), 'pick up the red cube')
        measured = timed(lambda: engine.infer(observation, noise_seed=0), args.warmup, args.chunks)
    return {**measured, 'flow_steps': engine.spec.num_flow_steps, 'horizon': engine.spec.horizon}


@dataclasses.dataclass(frozen=True)
class Row:
    """One measurement to make."""

    path: str  # 'torch' or 'ort'
    size: str
    model: str
    variant: str
    cameras: int
    mode: str  # torch: eager / cudagraphs / reduce-overhead; ort: the execution provider


def plan(args: argparse.Namespace, providers: list[str]) -> list[Row]:
    """Every row of this run, cheapest mode first, the goals' configurations first within a mode."""
    configs = [(m, c) for m, c in PRIORITY if m in args.models and c in args.cameras]
    rows = []
    for size in args.sizes:
        for mode in [m for m in args.modes if args.device == 'cuda' or m not in CUDA_MODES]:
            rows += [Row('torch', size, m, v, c, mode) for m, c in configs for v in args.variants]
        if 'ort' in args.paths:
            ort_configs = [(m, c) for m, c in configs if m in ORT_MODELS]
            rows += [Row('ort', size, m, v, c, p) for p in providers for m, c in ort_configs for v in args.variants]
    return rows


def summary(rows: list[dict[str, Any]], on_gpu: bool) -> list[str]:
    """AdaMoE beside dense per configuration, with the goals where they apply (real sizes on a GPU)."""
    done = {(r['path'], r['size'], r['model'], r['cameras'], r['mode'], r['variant']): r for r in rows if 'p50_ms' in r}
    lines = [
        '| path | size | model | cameras | mode | dense p50 / p99 ms | AdaMoE p50 / p99 ms | AdaMoE/dense | goals |',
        '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ]
    for path, size, model, cameras, mode in sorted({key[:5] for key in done}):
        dense, ada = (done.get((path, size, model, cameras, mode, v)) for v in VARIANTS)
        cells = [f'{r["p50_ms"]:.1f} / {r["p99_ms"]:.1f}' if r else '-' for r in (dense, ada)]
        ratio = ada['p50_ms'] / dense['p50_ms'] if dense and ada else None
        graphs = [str(r.get('dynamo_graphs', '-')) if r else '-' for r in (dense, ada)]
        mode_cell = f'{mode} ({" / ".join(graphs)} graphs)' if mode in CUDA_MODES else mode
        goals = []
        if on_gpu and size == 'real' and ada:
            limit, for_cameras = MS_GOALS[model]
            if for_cameras in (None, cameras):
                goals.append(f'<= {limit:.0f} ms: {"met" if ada["p50_ms"] <= limit else "NOT met"}')
            if ratio is not None:
                goals.append(f'<= {RATIO_GOAL}x: {"met" if ratio <= RATIO_GOAL else "NOT met"}')
        ratio_cell = f'{ratio:.2f}x' if ratio is not None else '-'
        lines.append(
            f'| {path} | {size} | {model} | {cameras} | {mode_cell} | {cells[0]} | {cells[1]} | {ratio_cell} '
            f'| {"; ".join(goals) or "-"} |'
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    parser.add_argument('--sizes', nargs='+', choices=['real', 'tiny'], default=['real'])
    parser.add_argument('--models', nargs='+', choices=MODELS, default=list(MODELS))
    parser.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument('--cameras', nargs='+', type=int, choices=[2, 3], default=[2, 3])
    parser.add_argument('--modes', nargs='+', choices=MODES, default=['eager', 'cudagraphs'], help='torch modes')
    parser.add_argument('--paths', nargs='+', choices=['torch', 'ort'], default=['torch', 'ort'])
    parser.add_argument('--dtype', choices=list(DTYPES), default='bf16', help='PyTorch precision')
    parser.add_argument('--chunks', type=int, default=50, help='timed chunks per row, after the warm-up')
    parser.add_argument('--warmup', type=int, default=5, help='untimed chunks first (compiling, graph capture)')
    parser.add_argument('--budget-min', type=float, default=7.5, help='start no row after this many minutes')
    parser.add_argument('--out', type=Path, help='JSON file for the rows (rewritten after every row)')
    args = parser.parse_args(argv)

    import onnxruntime as ort

    available = ort.get_available_providers()
    providers = [p for p in GPU_PROVIDERS if p in available] if args.device == 'cuda' else ['CPUExecutionProvider']
    notes = []
    if 'ort' in args.paths and not providers:
        notes.append(
            f'ort: skipped, this onnxruntime has no CUDA/TensorRT provider ({available}; onnxruntime-gpu has).'
        )
    if 'ort' in args.paths and set(args.models) - set(ORT_MODELS):
        notes.append('ort: SmolVLA only (no π0 bundle export yet).')
    if args.device == 'cuda' and not torch.cuda.is_available():
        torch_modes = ', '.join(args.modes) if 'torch' in args.paths else 'none'
        print(
            f'bench_gpu: no CUDA device here (torch {torch.__version__}), nothing measured. On one it would run '
            f'{" and ".join(args.models)} ({", ".join(args.sizes)} size) {" vs ".join(args.variants)}, '
            f'{" and ".join(map(str, args.cameras))} cameras: torch {args.dtype} {torch_modes}; '
            f'ort {", ".join(providers) or "none"}. {" ".join(notes)}'
        )
        return 0
    started = time.perf_counter()
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else platform.processor() or 'CPU'
    header = (
        f'{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {device_name}, torch {torch.__version__} '
        f'(CUDA {torch.version.cuda}), onnxruntime {ort.__version__} {available}; torch {args.dtype}, ort fp16 '
        f'bundles; p50/p99 over {args.chunks} chunks after {args.warmup} warm-up chunks; batch 1; random init'
    )
    print('\n'.join([header, *notes]), flush=True)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    results: list[dict[str, Any]] = []
    policies: dict[tuple[str, str, str], Any] = {}
    with tempfile.TemporaryDirectory(prefix='bench_gpu_') as tmp:
        for row in plan(args, providers):
            result: dict[str, Any] = dataclasses.asdict(row) | {'dtype': args.dtype if row.path == 'torch' else 'fp16'}
            elapsed_min = (time.perf_counter() - started) / 60
            if elapsed_min > args.budget_min:
                result['skipped'] = f'time budget ({args.budget_min} min) spent'
            else:
                try:
                    if row.path == 'torch':
                        key = (row.model, row.size, row.variant)
                        if key not in policies:
                            build_start = time.perf_counter()
                            policies[key] = build_policy(*key, Path(tmp), args.device, DTYPES[args.dtype])
                            result['build_s'] = time.perf_counter() - build_start
                        result['params_m'] = sum(p.numel() for p in policies[key].parameters()) / 1e6
                        result |= torch_row(policies[key], row.model, row.cameras, row.mode, args)
                    else:
                        result |= ort_row(row.model, row.size, row.variant, row.cameras, row.mode, args)
                except Exception as exc:  # one failed row (an op CUDA graphs cannot capture) must not lose the rest
                    result['error'] = f'{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}'
            results.append(result)
            print(json.dumps(result), flush=True)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({'header': header, 'args': settings, 'rows': results}, indent=2))
    print('\n'.join(['', header, '', *summary(results, args.device == 'cuda')]))
    failed = [r for r in results if 'error' in r or 'skipped' in r]
    for r in failed:
        print(
            f'not measured: {r["path"]} {r["size"]} {r["model"]} {r["variant"]} {r["cameras"]} cameras {r["mode"]}: '
            f'{r.get("error") or r["skipped"]}'
        )
    print(f'whole run: {(time.perf_counter() - started) / 60:.1f} min')
    return 0


if __name__ == '__main__':
    sys.exit(main())
