"""Two evaluations of the same episodes, paired: which policy won which seed, and whether the difference holds.

    python -m adamoe_ros.closed_loop.compare A B

A and B are evaluation JSONs (`direct_eval --out`, `ros_eval --out`) or folders of them (`ros_eval_per_task.py
--out`). Episodes pair by seed, task and instruction; an episode that only one side ran is an error, since unpaired
episodes would make the paired test meaningless. Prints each side's success, the discordant pairs with the exact
McNemar p-value, and Newcombe's 95% interval of the difference (B - A), overall and per task.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adamoe_ros.closed_loop.stats import difference_interval, mcnemar_exact_p

EpisodeKey = tuple[int, str, str]


def load_outcomes(path: Path) -> dict[EpisodeKey, bool]:
    """Return success per (seed, task, instruction) of an evaluation JSON or a folder of them."""
    files = sorted(path.glob('*.json')) if path.is_dir() else [path]
    if not files:
        raise ValueError(f'{path}: no evaluation JSON')
    outcomes = {}
    for file in files:
        for episode in json.loads(file.read_text())['episodes']:
            outcomes[(int(episode['seed']), episode['task'], episode['instruction'])] = bool(episode['success'])
    return outcomes


def compare_line(label: str, a: list[bool], b: list[bool]) -> str:
    """One row: successes of each side, the discordant pairs, McNemar's p and the difference's interval."""
    n, wins_a, wins_b = len(a), sum(a), sum(b)
    only_a = sum(x and not y for x, y in zip(a, b, strict=True))
    only_b = sum(y and not x for x, y in zip(a, b, strict=True))
    low, high = difference_interval(wins_b, n, wins_a, n)
    return (
        f'| {label} | {wins_a}/{n} | {wins_b}/{n} | {only_a} / {only_b} | {mcnemar_exact_p(only_a, only_b):.3g} '
        f'| {100 * (wins_b - wins_a) / n:+.0f} ({100 * low:+.0f}..{100 * high:+.0f}) |'
    )


def comparison_table(a: dict[EpisodeKey, bool], b: dict[EpisodeKey, bool]) -> str:
    """Return the markdown table comparing paired outcomes, per task and over all episodes."""
    if a.keys() != b.keys():
        missing = sorted(a.keys() ^ b.keys())[:3]
        raise ValueError(f'the evaluations ran different episodes (e.g. {missing}): nothing to pair them by')
    keys = sorted(a)
    lines = [
        '| task | A | B | A only / B only | McNemar p | B - A, points (95%) |',
        '| --- | --- | --- | --- | --- | --- |',
    ]
    for task in dict.fromkeys(key[1] for key in keys):
        task_keys = [key for key in keys if key[1] == task]
        lines.append(compare_line(task, [a[k] for k in task_keys], [b[k] for k in task_keys]))
    lines.append(compare_line('**all**', [a[k] for k in keys], [b[k] for k in keys]))
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('a', type=Path, help='evaluation JSON or folder of them (A)')
    parser.add_argument('b', type=Path, help='the same episodes evaluated with another policy or setting (B)')
    args = parser.parse_args(argv)
    try:
        table = comparison_table(load_outcomes(args.a), load_outcomes(args.b))
    except (OSError, ValueError, KeyError) as err:
        parser.error(str(err))
    print(f'A = {args.a}\nB = {args.b}\n{table}')


if __name__ == '__main__':
    main()
