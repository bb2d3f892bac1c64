"""The ablation's report: evaluations of every variant and fine-tuning seed pooled into tables with intervals.

Reads what scripts/ablation.py leaves in its results folder, per variant and seed (`<variant>/seed<N>/`):
`eval.json` (direct_eval on held-out seeds), optionally `held_out.json` and `swap.json` (the language tests), and
`train_log.jsonl`. Writes `README.md` and `ablation.json` beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from adamoe_ros.closed_loop.stats import difference_interval, specialisation, wilson_interval

LAST_LOGGED = 20  # losses: mean over the last logged steps (one batch each is noisy)


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def training_summary(log: Path) -> dict[str, float | None]:
    """From adamoe-train's log: mean flow and balance loss of the last logged steps, and the median step time.

    The median step, unlike wall time, is right for a run stopped and resumed.
    """
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def mean_of_last(key: str) -> float | None:
        values = [e[key] for e in entries[-LAST_LOGGED:] if e.get(key) is not None]
        return float(np.mean(values)) if values else None

    times = [e['step_s'] for e in entries if e.get('step_s') is not None]
    return {
        'flow_loss': mean_of_last('flow_loss'),
        'balance_loss': mean_of_last('balance_loss'),
        'step_p50_s': float(np.median(times)) if times else None,
    }


def _pool_usage(summaries: list[dict[str, Any]], key: str) -> dict[str, np.ndarray]:
    """Mean of each group's expert shares over the seeds that report it (empty for dense)."""
    groups: dict[str, list[np.ndarray]] = {}
    for s in summaries:
        for group, share in s.get('expert_usage', {}).get(key, {}).items():
            groups.setdefault(group, []).append(np.asarray(share))
    return {g: np.mean(v, axis=0) for g, v in groups.items()}


def variant_row(folder: Path) -> dict[str, Any] | None:
    """Pool a variant's evaluations over its seeds (None when none is evaluated yet)."""
    seeds = sorted(p for p in folder.glob('seed*') if (p / 'eval.json').exists())
    if not seeds:
        return None
    evals = [_read(p / 'eval.json')['summary'] for p in seeds]
    wins, n = sum(s['successes'] for s in evals), sum(s['episodes'] for s in evals)
    per_task: dict[str, list[int]] = {}
    for s in evals:
        for task, row in s.get('per_task', {}).items():
            counts = per_task.setdefault(task, [0, 0])
            counts[0] += row['successes']
            counts[1] += row['episodes']
    training = [training_summary(p / 'train_log.jsonl') for p in seeds]
    entropy = [s['expert_usage']['usage_entropy'] for s in evals if 'expert_usage' in s]

    def mean_of(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return float(np.mean(kept)) if kept else None

    language = {}
    for test in ('held_out', 'swap'):
        found = [_read(p / f'{test}.json') for p in seeds if (p / f'{test}.json').exists()]
        if found:
            summary = found[0]['summary']
            scene = [r['scene_task'] for r in summary.get('per_task', {}).values() if 'scene_task' in r]
            language[test] = {
                'successes': summary['successes'],
                'episodes': summary['episodes'],
                'scene_task_successes': sum(r['successes'] for r in scene),
                'scene_task_episodes': sum(r['episodes'] for r in scene),
            }
    return {
        'variant': folder.name,
        'seeds': [p.name for p in seeds],
        'successes': wins,
        'episodes': n,
        'success_rate': wins / n,
        'ci95': list(wilson_interval(wins, n)),
        'per_seed_rates': [s['success_rate'] for s in evals],
        'lift_rate': sum(s['lift_rate'] * s['episodes'] for s in evals) / n,
        'per_task': {
            t: {'successes': w, 'episodes': m, 'ci95': list(wilson_interval(w, m))} for t, (w, m) in per_task.items()
        },
        'flow_loss': mean_of([x['flow_loss'] for x in training]),
        'balance_loss': mean_of([x['balance_loss'] for x in training]),
        'usage_entropy': mean_of(entropy),
        'task_specialisation': specialisation(_pool_usage(evals, 'by_task')),
        'phase_specialisation': specialisation(_pool_usage(evals, 'by_phase')),
        'step_p50_s': mean_of([x['step_p50_s'] for x in training]),
        'inference_p50_ms': mean_of([s['inference']['p50_ms'] for s in evals]),
        'language': language,
    }


def _pct(rate: float) -> str:
    return f'{rate:.0%}'


def _num(value: float | None, fmt: str) -> str:
    return 'n/a' if value is None or value != value else format(value, fmt)


def _difference(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, float, float]:
    low, high = difference_interval(a['successes'], a['episodes'], b['successes'], b['episodes'])
    return a['success_rate'] - b['success_rate'], low, high


def comparisons(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Plain statements of the differences the paper's claim is about, and whether their intervals support them."""
    pairs = [(v, 'dense') for v in rows if v != 'dense'] + [
        ('adamoe_e4_k1', 'vanilla_e4_k1'),
        ('adamoe_e4_k1_fp', 'vanilla_e4_k1'),
        ('adamoe_e4_k1_fp', 'adamoe_e4_k1'),
    ]
    lines = []
    for a, b in pairs:
        if a not in rows or b not in rows:
            continue
        d, low, high = _difference(rows[a], rows[b])
        verdict = 'supported' if low > 0 or high < 0 else 'not supported (the interval includes 0)'
        lines.append(f'- {a} - {b}: {d:+.0%} (95% CI {low:+.0%} to {high:+.0%}): {verdict}')
    return lines


def markdown(rows: dict[str, dict[str, Any]], command: str) -> str:
    """Return the report as Markdown."""
    out = [
        '# AdaMoE ablation on the multi-task scene (generated by scripts/ablation.py)',
        '',
        'Stage A pretrains one dense policy on the scripted multi-task demonstrations; stage B fine-tunes every '
        'variant from that checkpoint for the same steps (dense continues, MoE variants are upcycled). Evaluation: '
        'the engine drives the sim directly (sim paused during inference) on held-out seeds, each fine-tuning seed '
        'its own block of seeds, pooled per variant; canonical instructions. Intervals: Wilson 95%; differences: '
        "Newcombe's 95% interval. Specialisation: mean total-variation distance of each task's (phase's) expert "
        'shares from their mean (0 = routed alike). Training step: the median step time (batch 16, one thread, two '
        'jobs side by side).',
        '',
        '| variant | seeds | success (95% CI) | per seed | lifted | vs dense | flow loss | balance loss | '
        'usage entropy | task spec. | phase spec. | training step | inference p50 |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for name, r in rows.items():
        if name == 'dense' or 'dense' not in rows:
            versus = '-'
        else:
            d, low, high = _difference(r, rows['dense'])
            versus = f'{d:+.0%} ({low:+.0%}..{high:+.0%})'
        out.append(
            f'| {name} | {len(r["seeds"])} | {r["successes"]}/{r["episodes"]} = {_pct(r["success_rate"])} '
            f'({_pct(r["ci95"][0])}-{_pct(r["ci95"][1])}) | {" / ".join(_pct(x) for x in r["per_seed_rates"])} | '
            f'{_pct(r["lift_rate"])} | {versus} | {_num(r["flow_loss"], ".4f")} | {_num(r["balance_loss"], ".4f")} | '
            f'{_num(r["usage_entropy"], ".3f")} | {_num(r["task_specialisation"], ".3f")} | '
            f'{_num(r["phase_specialisation"], ".3f")} | {_num(r["step_p50_s"] and 1e3 * r["step_p50_s"], ".0f")} ms | '
            f'{_num(r["inference_p50_ms"], ".1f")} ms |'
        )
    tasks = list(dict.fromkeys(t for r in rows.values() for t in r['per_task']))
    out += ['', '## Success per instructed task (pooled over seeds)', '', '| variant | ' + ' | '.join(tasks) + ' |']
    out.append('|---|' + '---|' * len(tasks))
    for name, r in rows.items():
        cells = []
        for t in tasks:
            c = r['per_task'].get(t)
            cells.append('-' if c is None else f'{c["successes"]}/{c["episodes"]}')
        out.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    language = {n: r['language'] for n, r in rows.items() if r['language']}
    if language:
        out += [
            '',
            '## Language tests (first fine-tuning seed)',
            '',
            "Held-out phrasings: paraphrases no demonstration used. Swapped: each episode is told the next task's "
            "instruction; a policy that reads it does the instructed task and rarely the scene's own task.",
            '',
            '| variant | held-out phrasings: success | swapped: instructed task done | '
            'swapped: scene task done instead |',
            '|---|---|---|---|',
        ]
        for name, tests in language.items():
            held, swap = tests.get('held_out'), tests.get('swap')
            held_cell = f'{held["successes"]}/{held["episodes"]}' if held else '-'
            swap_cells = (
                [
                    f'{swap["successes"]}/{swap["episodes"]}',
                    f'{swap["scene_task_successes"]}/{swap["scene_task_episodes"]}',
                ]
                if swap
                else ['-', '-']
            )
            out.append(f'| {name} | {held_cell} | ' + ' | '.join(swap_cells) + ' |')
    out += ['', '## Which differences the intervals support', '', *comparisons(rows)]
    out += ['', 'Expert usage per phase and per instructed task: `<variant>/seed<N>/expert_usage.png`.']
    out += ['', 'Command:', '', '```', command, '```', '']
    return '\n'.join(out)


def write_report(results: Path, variants: list[str], command: str) -> str:
    """Pool what is evaluated so far, write README.md and ablation.json in `results`; return the Markdown."""
    rows = {v: row for v in variants if (row := variant_row(results / v)) is not None}
    text = markdown(rows, command)
    (results / 'README.md').write_text(text)
    (results / 'ablation.json').write_text(json.dumps(rows, indent=2) + '\n')
    return text
