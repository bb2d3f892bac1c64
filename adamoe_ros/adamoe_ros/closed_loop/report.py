"""Turn evaluated episodes into a summary, a contact sheet / video of the cameras and expert-usage plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from adamoe_ros.closed_loop.phases import PHASES
from adamoe_ros.closed_loop.rollout import EpisodeResult, RoutingRecord
from adamoe_ros.closed_loop.stats import percentiles_ms, usage_entropy, wilson_interval


def summarize(episodes: Sequence[EpisodeResult], top_k: int = 1) -> dict[str, Any]:
    """Success rate with its 95% Wilson interval, mean episode time, inference latency, expert usage."""
    n = len(episodes)
    wins = sum(e.success for e in episodes)
    low, high = wilson_interval(wins, n)
    times = [e.episode_time for e in episodes if e.success]
    inference = [t for e in episodes for t in e.inference_times]
    summary: dict[str, Any] = {
        'episodes': n,
        'successes': wins,
        'success_rate': wins / n if n else float('nan'),
        'success_ci95': [low, high],
        'lift_rate': sum(e.lifted for e in episodes) / n if n else float('nan'),
        'mean_success_time_s': float(np.mean(times)) if times else None,
        'inference': percentiles_ms(inference),
    }
    if any(e.task for e in episodes):
        summary['per_task'] = per_task(episodes)
    latencies = [t for e in episodes for t in getattr(e, 'latencies', [])]
    if latencies:
        summary['observation_to_chunk'] = percentiles_ms(latencies)
    usage = usage_by_phase(episodes)
    if usage and next(iter(usage.values())).size:
        overall = np.mean([r.token_fraction for e in episodes for r in e.routing], axis=0)
        summary['expert_usage'] = {
            'overall_token_fraction': overall.round(4).tolist(),
            'usage_entropy': usage_entropy(overall, top_k),
            'by_phase': {p: u.round(4).tolist() for p, u in usage.items()},
            'by_task': {t: u.round(4).tolist() for t, u in usage_by_task(episodes).items()},
        }
    return summary


def _rate(wins: int, n: int) -> dict[str, Any]:
    return {'successes': wins, 'rate': wins / n if n else float('nan'), 'ci95': list(wilson_interval(wins, n))}


def per_task(episodes: Sequence[EpisodeResult]) -> dict[str, dict[str, Any]]:
    """Success per instructed task with its 95% Wilson interval, and the instructions used.

    Where the instruction was swapped for another task's, `scene_task` gives the rate of doing the task the scene
    would otherwise be scored on instead (the task the policy was not told to do: near zero if it reads the
    instruction).
    """
    table: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(e.task for e in episodes):
        mine = [e for e in episodes if e.task == name]
        row: dict[str, Any] = {'episodes': len(mine), **_rate(sum(e.success for e in mine), len(mine))}
        row['instructions'] = sorted({e.instruction for e in mine})
        swapped = [e for e in mine if e.scene_task != e.task]
        if swapped:
            row['scene_task'] = {
                'tasks': sorted({e.scene_task for e in swapped}),
                'episodes': len(swapped),
                **_rate(sum(e.scene_task_success for e in swapped), len(swapped)),
            }
        table[name] = row
    return table


def print_per_task(summary: dict[str, Any], log: Any = print) -> None:
    """One line per instructed task: success with its interval (and the scene task's when swapped)."""
    for name, row in summary.get('per_task', {}).items():
        low, high = row['ci95']
        line = f'  {name}: {row["successes"]}/{row["episodes"]} ({low:.0%}-{high:.0%})'
        if 'scene_task' in row:
            other = row['scene_task']
            line += f'; did the scene task instead {other["successes"]}/{other["episodes"]}'
        log(line)


def usage_by_phase(episodes: Sequence[EpisodeResult]) -> dict[str, np.ndarray]:
    """Mean token fraction (layers x experts) per task phase over all chunks of the episodes."""
    by_phase: dict[str, list[np.ndarray]] = {}
    for episode in episodes:
        for record in episode.routing:
            by_phase.setdefault(record.phase, []).append(record.token_fraction)
    return {p: np.mean(by_phase[p], axis=0) for p in PHASES if p in by_phase}


def usage_by_task(episodes: Sequence[EpisodeResult]) -> dict[str, np.ndarray]:
    """Mean token fraction (layers x experts) per instructed task over all chunks of the episodes."""
    by_task: dict[str, list[np.ndarray]] = {}
    for episode in episodes:
        for record in episode.routing:
            by_task.setdefault(episode.task, []).append(record.token_fraction)
    return {t: np.mean(v, axis=0) for t, v in by_task.items()}


def episode_table(episodes: Sequence[EpisodeResult]) -> list[dict[str, Any]]:
    """One row per episode for the results file."""
    return [
        {
            'seed': e.seed,
            'task': e.task,
            'instruction': e.instruction,
            'success': e.success,
            'scene_task': e.scene_task,
            'scene_task_success': e.scene_task_success,
            'lifted': e.lifted,
            'episode_time_s': round(e.episode_time, 2),
            'chunks': len(e.inference_times),
            'commands': getattr(e, 'commands', None),
        }
        for e in episodes
    ]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a results file (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=float) + '\n')


def contact_sheet(
    episodes: Sequence[EpisodeResult], path: Path, max_frames: int = 8, max_episodes: int = 4
) -> Path | None:
    """Grid image: one row per episode, frames over time, cameras side by side within each cell."""
    rows = []
    for episode in [e for e in episodes if e.frames][:max_episodes]:
        picks = np.linspace(0, len(episode.frames) - 1, min(max_frames, len(episode.frames))).round().astype(int)
        cells = [np.concatenate([episode.frames[i][cam] for cam in sorted(episode.frames[i])], axis=1) for i in picks]
        row = np.concatenate(cells, axis=1)
        label = f'seed {episode.seed}: {"success" if episode.success else "fail"}'
        bar = np.full((18, row.shape[1], 3), 255, np.uint8)
        cv2.putText(bar, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.concatenate([bar, row], axis=0))
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate(
        [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows], axis=0
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def write_video(episode: EpisodeResult, path: Path, fps: float = 4.0) -> Path | None:
    """MP4 of one episode's kept frames (cameras side by side)."""
    if not episode.frames:
        return None
    frames = [np.concatenate([f[cam] for cam in sorted(f)], axis=1) for f in episode.frames]
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _pyplot():  # noqa: ANN202 - matplotlib is imported lazily: plotting is optional for the runtime
    import matplotlib  # noqa: PLC0415

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def _mark_phases(ax: Any, records: Sequence[RoutingRecord], y: float) -> None:
    """Vertical line and label where the task phase changes."""
    for r0, r1 in zip(records, records[1:], strict=False):
        if r0.phase != r1.phase:
            ax.axvline(r1.time, color='k', lw=0.7)
            ax.text(r1.time, y, r1.phase, fontsize=6, rotation=90, va='bottom', transform=ax.get_xaxis_transform())


def _save(fig: Any, path: Path, title: str) -> Path:
    fig.suptitle(title)
    legend_inches = 0.35 if fig.legends else 0.0  # a figure legend sits below the panels
    fig.tight_layout(rect=(0, legend_inches / fig.get_figheight(), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def _stacked_bars(ax: Any, usage: dict[str, np.ndarray], layer: int, colors: Sequence[Any]) -> None:
    """One bar per key (phase or task): the mean share of each expert in `layer`, stacked."""
    keys = list(usage)
    bottom = np.zeros(len(keys))
    for e in range(next(iter(usage.values())).shape[1]):
        values = np.array([usage[k][layer, e] for k in keys])
        ax.bar(keys, values, bottom=bottom, color=colors[e])
        bottom += values
    ax.set_ylabel('mean share')
    ax.tick_params(axis='x', labelsize=7, labelrotation=20)


def plot_expert_usage(episodes: Sequence[EpisodeResult], path: Path, title: str = '') -> Path | None:
    """Per MoE layer: the selected-expert share over the episode time, and the mean share per phase and per task."""
    records = [r for e in episodes for r in e.routing if r.token_fraction.size]
    if not records:  # no episode, or a dense bundle (no MoE layers)
        return None
    plt = _pyplot()
    first = next(e for e in episodes if e.routing)
    layers, experts = first.routing[0].token_fraction.shape
    fig, axes = plt.subplots(layers, 3, figsize=(16, 2.2 * layers + 0.6), squeeze=False)
    colors = plt.get_cmap('tab10').colors
    times = np.array([r.time for r in first.routing])
    by_phase, by_task = usage_by_phase(episodes), usage_by_task(episodes)
    for layer in range(layers):
        share = np.stack([r.token_fraction[layer] for r in first.routing])  # (chunks, E)
        weight = np.stack([r.mean_weight[layer] for r in first.routing])
        ax = axes[layer, 0]
        ax.stackplot(times, share.T, colors=colors[:experts], labels=[f'expert {e}' for e in range(experts)])
        for e in range(experts):
            ax.plot(times, weight[:, e], color=colors[e], lw=0.8, ls='--')
        _mark_phases(ax, first.routing, 1.02)
        ax.set_ylabel(f'layer {layer}\nshare')
        ax.set_xlabel(f'sim time (s), seed {first.seed}')
        _stacked_bars(axes[layer, 1], by_phase, layer, colors)
        _stacked_bars(axes[layer, 2], by_task, layer, colors)
    # One legend for the figure, below the panels: inside a panel it hides the curves.
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc='lower center', ncol=experts, fontsize=7, frameon=False)
    panels = ('share per chunk (area), weight if chosen (dashed)', 'mean share per phase', 'mean share per instruction')
    for ax, panel in zip(axes[0], panels, strict=True):
        ax.set_title(panel, fontsize=9, pad=14)
    return _save(fig, path, title or 'AdaMoE expert usage')


def plot_token_routing(records: Sequence[RoutingRecord], path: Path, title: str = '') -> Path | None:
    """Per MoE layer: the expert each action token was routed to (colour) and its weight, chunk by chunk."""
    records = [r for r in records if r.token_expert is not None]
    if not records:
        return None
    plt = _pyplot()
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    experts = np.stack([r.token_expert for r in records], axis=-1)  # (L, T, chunks)
    weights = np.stack([r.token_weight for r in records], axis=-1)
    layers, tokens, _ = experts.shape
    num_experts = records[0].token_fraction.shape[1]
    times = [r.time for r in records]
    extent = (times[0], times[-1] + 1e-3, tokens - 0.5, -0.5)
    fig, axes = plt.subplots(layers, 2, figsize=(12, 2.0 * layers + 0.8), squeeze=False)
    cmap = ListedColormap(plt.get_cmap('tab10').colors[:num_experts])
    for layer in range(layers):
        ax = axes[layer, 0]
        im = ax.imshow(
            experts[layer],
            aspect='auto',
            cmap=cmap,
            vmin=-0.5,
            vmax=num_experts - 0.5,
            interpolation='nearest',
            extent=extent,
        )
        ax.set_ylabel(f'layer {layer}\naction token')
        _mark_phases(ax, records, 1.02)
        fig.colorbar(im, ax=ax, ticks=range(num_experts), label='expert')
        ax = axes[layer, 1]
        im = ax.imshow(weights[layer], aspect='auto', cmap='viridis', interpolation='nearest', extent=extent)
        fig.colorbar(im, ax=ax, label='weight')
    axes[0, 0].set_title('expert of each action token (last flow step)')
    axes[0, 1].set_title('its weight (router probability + scale adapter)')
    for ax in axes[-1]:
        ax.set_xlabel('time (s)')
    return _save(fig, path, title or 'AdaMoE routing per action token')
