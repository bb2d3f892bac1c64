#!/usr/bin/env python3
"""The AdaMoE ablation, like the paper's: same data, seed set, steps and base; only the action expert's FFN varies.

For each variant: train (adamoe-train), export (adamoe-export), evaluate on held-out seeds with the engine driving
the sim directly (adamoe_ros.closed_loop.direct_eval). Then one table and plots:

    python scripts/ablation.py --dataset outputs/pipeline/dataset --steps 1500 --episodes 30 --out results/ablation

Reported per variant: success rate with a 95% Wilson interval, lift rate, final flow and balance loss, expert usage
entropy, training time, inference latency (p50/p99 of one chunk on ONNX Runtime, 1 thread).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS: dict[str, list[str]] = {
    'dense': ['--routing-mode', 'dense'],
    'vanilla_e4_k1': ['--routing-mode', 'vanilla', '--num-experts', '4', '--top-k', '1'],
    'adamoe_e4_k1': ['--routing-mode', 'adamoe', '--num-experts', '4', '--top-k', '1'],
    'adamoe_e4_k2': ['--routing-mode', 'adamoe', '--num-experts', '4', '--top-k', '2'],
    'adamoe_e8_k1': ['--routing-mode', 'adamoe', '--num-experts', '8', '--top-k', '1'],
    'adamoe_e4_k1_fp': [
        '--routing-mode',
        'adamoe',
        '--num-experts',
        '4',
        '--top-k',
        '1',
        '--set',
        'function_preserving_init=true',
    ],
}
REPO_ID = 'local/so101_demos'


def run(cmd: list[str], log: Path) -> None:
    """Run a stage, its output to a log file; raise with the log's tail on failure."""
    with log.open('a') as fh:
        fh.write(f'$ {" ".join(cmd)}\n')
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy())
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-30:]
        raise RuntimeError(f'{cmd[0]} failed ({proc.returncode}); log {log}:\n' + '\n'.join(tail))


def final_losses(train_dir: Path, last: int = 20) -> dict[str, float | None]:
    """Mean flow and balance loss over the last `last` logged steps of adamoe-train (one batch each is noisy)."""
    entries = [json.loads(line) for line in (train_dir / 'train_log.jsonl').read_text().splitlines()][-last:]

    def mean(key: str) -> float | None:
        values = [e[key] for e in entries if e.get(key) is not None]
        return sum(values) / len(values) if values else None

    return {'flow_loss': mean('flow_loss'), 'balance_loss': mean('balance_loss')}


def run_variant(name: str, extra: list[str], args: argparse.Namespace) -> dict:
    """Train, export and evaluate one variant (skipping stages whose outputs exist)."""
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    log = out / 'stages.log'
    train_dir, bundle, results = out / 'train', out / 'bundle', out / 'eval.json'
    timing_file = out / 'train_time.json'
    if not (train_dir / 'checkpoints' / 'last').exists():
        start = time.monotonic()
        run(
            [
                'adamoe-train',
                '--dataset-root',
                str(args.dataset),
                '--repo-id',
                REPO_ID,
                '--output-dir',
                str(train_dir),
                '--steps',
                str(args.steps),
                '--batch-size',
                str(args.batch_size),
                '--seed',
                str(args.seed),
                '--lr-scale',
                str(args.lr_scale),
                '--threads',
                str(args.threads),
                *extra,
            ],
            log,
        )
        timing_file.write_text(json.dumps({'train_time_s': time.monotonic() - start}))
    if not (bundle / 'bundle.json').exists():
        run(
            [
                'adamoe-export',
                str(train_dir / 'checkpoints' / 'last' / 'pretrained_model'),
                str(bundle),
                '--dataset-root',
                str(args.dataset),
                '--threads',
                str(args.threads),
            ],
            log,
        )
    if not results.exists():
        run(
            [
                sys.executable,
                '-m',
                'adamoe_ros.closed_loop.direct_eval',
                '--bundle',
                str(bundle),
                '--episodes',
                str(args.episodes),
                '--first-seed',
                '1000',
                '--out',
                str(results),
                '--plot',
                str(out / 'expert_usage.png'),
            ],
            log,
        )
    summary = json.loads(results.read_text())['summary']
    return {
        'variant': name,
        'summary': summary,
        **final_losses(train_dir),
        'train_time_s': json.loads(timing_file.read_text())['train_time_s'] if timing_file.exists() else None,
    }


def markdown_table(rows: list[dict], args: argparse.Namespace) -> str:
    """Results as a Markdown table plus the command that produced it."""
    lines = [
        '# AdaMoE ablation (generated by scripts/ablation.py)',
        '',
        f'Data: `{args.dataset}` (scripted demonstrations). Same seed ({args.seed}), {args.steps} steps, '
        f'batch {args.batch_size}, tiny SmolVLA-style base for every variant. Evaluation: {args.episodes} held-out '
        'seeds (1000..), the engine driving the sim directly (no ROS, sim paused during inference). Losses: mean of '
        'the last 20 logged steps. Train time: wall clock on the 2-core machine with up to two variants training at '
        'once, so compare it only roughly.',
        '',
        '| variant | success (95% CI) | lifted | flow loss | balance loss | usage entropy | train time | '
        'inference p50 / p99 |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for row in rows:
        s = row['summary']
        ci = s['success_ci95']
        entropy = s.get('expert_usage', {}).get('usage_entropy')
        entropy = None if entropy is None or entropy != entropy else entropy  # dense: no experts
        fmt = lambda v, f: 'n/a' if v is None else format(v, f)  # noqa: E731
        lines.append(
            f'| {row["variant"]} | {s["successes"]}/{s["episodes"]} = {s["success_rate"]:.0%} '
            f'({ci[0]:.0%}-{ci[1]:.0%}) | {s["lift_rate"]:.0%} | {fmt(row["flow_loss"], ".4f")} | '
            f'{fmt(row["balance_loss"], ".4f")} | {fmt(entropy, ".3f")} | {fmt(row["train_time_s"], ".0f")} s | '
            f'{s["inference"]["p50_ms"]:.1f} / {s["inference"]["p99_ms"]:.1f} ms |'
        )
    lines += ['', 'Command:', '', '```', ' '.join(['python scripts/ablation.py', *sys.argv[1:]]), '```', '']
    return '\n'.join(lines)


def main() -> None:
    """Run the variants (two at a time, one thread each) and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--dataset', type=Path, required=True)
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--lr-scale', type=float, default=20.0)
    parser.add_argument('--episodes', type=int, default=30)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--parallel', type=int, default=2)
    parser.add_argument('--variants', nargs='*', default=list(VARIANTS))
    parser.add_argument('--out', type=Path, default=Path('results/ablation'))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = {name: pool.submit(run_variant, name, VARIANTS[name], args) for name in args.variants}
        rows = []
        for name, future in futures.items():
            try:
                rows.append(future.result())
                print(f'{name}: done', flush=True)
            except Exception as err:  # noqa: BLE001 - report the variant and keep the others
                print(f'{name}: FAILED: {err}', flush=True)
    (args.out / 'ablation.json').write_text(json.dumps(rows, indent=2) + '\n')
    table = markdown_table(rows, args)
    (args.out / 'README.md').write_text(table)
    print(table)


if __name__ == '__main__':
    main()
