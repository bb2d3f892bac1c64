"""The GPU benchmark's code on the CPU at the test size: its timed chunk is LeRobot's, and a whole run completes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lerobot_policy_adamoe.testing import load_benchmark

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_gpu.py'


@pytest.fixture(scope='module')
def bench():
    return load_benchmark('bench_gpu')


@pytest.mark.parametrize('model', ['smolvla', 'pi0'])
def test_the_timed_chunk_is_lerobots_sample_actions(bench, model, tmp_path):
    policy = bench.build_policy(model, 'tiny', 'adamoe', tmp_path, 'cpu', torch.float32)
    with bench.graph_modules(policy, model, 2) as graphs:
        chunk = bench.TorchChunk(graphs, 'eager', torch.device('cpu'))()
    images, (tokens, mask) = graphs.prefix_inputs[:2], graphs.prefix_inputs[2:4]
    state = graphs.prefix_inputs[4] if model == 'smolvla' else graphs.state[0]
    with torch.no_grad():
        masks = [torch.ones(1, dtype=torch.bool)] * 2
        expected = policy.model.sample_actions(images, masks, tokens, mask, state, noise=graphs.noise.clone())
    # fp32, the same ops in the same order (SmolVLA's recorded position ids are the ones it computes): bit-identical.
    np.testing.assert_array_equal(chunk.numpy(), expected.numpy())


def test_the_compiled_chunk_is_the_eager_one(bench, tmp_path):
    # On the CPU the 'cudagraphs' backend runs dynamo's graphs without capturing them (capture needs CUDA): this
    # checks the compiled path's plumbing and numerics, not CUDA graphs themselves.
    policy = bench.build_policy('smolvla', 'tiny', 'adamoe', tmp_path, 'cpu', torch.float32)
    with bench.graph_modules(policy, 'smolvla', 2) as graphs:
        eager = bench.TorchChunk(graphs, 'eager', torch.device('cpu'))()
        compiled = bench.TorchChunk(graphs, 'cudagraphs', torch.device('cpu'))
        first, second = compiled(), compiled()
    np.testing.assert_allclose(first.numpy(), eager.numpy(), atol=1e-5)  # measured 3.6e-7: AOT graphs reorder ops
    np.testing.assert_array_equal(second.numpy(), first.numpy())


def test_a_cpu_run_at_the_test_size_times_every_row(bench, tmp_path, capsys):
    out = tmp_path / 'rows.json'
    assert bench.main(['--device', 'cpu', '--sizes', 'tiny', '--chunks', '2', '--warmup', '1', '--out', str(out)]) == 0
    written = json.loads(out.read_text())
    rows = written['rows']
    assert written['args']['device'] == 'cpu' and written['args']['chunks'] == 2
    torch_rows = {(r['model'], r['variant'], r['cameras']) for r in rows if r['path'] == 'torch'}
    assert torch_rows == {(m, v, c) for m in ('smolvla', 'pi0') for v in ('dense', 'adamoe') for c in (2, 3)}
    ort_rows = {(r['model'], r['variant'], r['cameras'], r['mode']) for r in rows if r['path'] == 'ort'}
    assert ort_rows == {('smolvla', v, c, 'CPUExecutionProvider') for v in ('dense', 'adamoe') for c in (2, 3)}
    assert all(0 < r['p50_ms'] <= r['p99_ms'] and r['flow_steps'] == 10 for r in rows), rows
    printed = capsys.readouterr().out
    assert '| torch | tiny | pi0 | 3 | eager |' in printed and 'AdaMoE/dense' in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason='a CUDA device is here: the benchmark would run')
def test_without_cuda_it_says_so_in_one_line_and_exits_0():
    result = subprocess.run([sys.executable, str(BENCH)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('bench_gpu: no CUDA device here') and result.stdout.count('\n') == 1
    assert 'cudagraphs' in result.stdout
