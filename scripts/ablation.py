#!/usr/bin/env python3
"""The AdaMoE ablation as the paper ran it: upcycle one pretrained dense policy, fine-tune every variant alike.

On the multi-task scene (sim/tasks.py), in stages; a stage whose outputs exist is skipped, so the study can be
stopped at any point and started again with the same command:

  collect   scripted demonstrations through ROS, in chunks of training seeds, merged into one LeRobot dataset
  pretrain  stage A: the dense base (--base-model: a 2x wider action expert, the VLM trained) on those demos
  finetune  stage B: from that one checkpoint, per variant and seed: dense, vanilla MoE and AdaMoE (reference and
            function-preserving init) upcycled, then AdaMoE top-2 and 8 experts (two jobs at a time, one thread each);
            beside them, stage A's checkpoint itself (`base`) is exported and evaluated like a variant
  export    a bundle per fine-tuned model (validated against PyTorch)
  evaluate  the engine driving the sim directly on held-out seeds (each fine-tuning seed its own block of
            evaluation seeds, pooled per variant); seed 0 of the main variants also with held-out phrasings and
            with swapped instructions (the language test)
  (pixels)  beside all of these, in one of the two workers from the start, the cameras-only chain: the same
            demonstrations with the joints alone as state, its own base (stage A's recipe), then AdaMoE with the
            function-preserving init fine-tuned from it, exported and evaluated; --stop-after applies to it too
  report    results/ablation_multitask/README.md: success per variant and task with 95% intervals, the spread over
            seeds, differences to dense with their intervals, losses, expert usage and its specialisation

    python scripts/ablation.py                      # everything, resuming
    python scripts/ablation.py --stop-after pretrain
    python scripts/ablation.py --text-encoder all-MiniLM-L6-v2 --variants --work W --results R  # that base alone
    python scripts/ablation.py ... --variants --pretrain-seed 1 --work W2 ...  # another run of it (W2/dataset: a link)

Checkpoints, bundles and the dataset go to --work (not committed); evaluations, logs and the report to --results.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from adamoe_ros.closed_loop.ablation_report import write_report
from adamoe_ros.closed_loop.protocol import SELECTION_FIRST_SEED, TRAIN_FIRST_SEED
from lerobot_policy_adamoe.text_encoder import TEXT_ENCODERS

ROOT = Path(__file__).resolve().parents[1]

REPO_ID = 'local/so101_multitask'
SCENE = 'multitask'
STAGES = ('collect', 'pretrain', 'finetune', 'export', 'evaluate', 'report')
# Stage B variants: name -> adamoe-train arguments (all upcycled from the stage A checkpoint).
VARIANTS: dict[str, list[str]] = {
    'dense': ['--routing-mode', 'dense'],
    'vanilla_e4_k1': ['--routing-mode', 'vanilla', '--num-experts', '4', '--top-k', '1'],
    'adamoe_e4_k1': ['--routing-mode', 'adamoe', '--num-experts', '4', '--top-k', '1'],
    'adamoe_e4_k1_fp': ['--routing-mode', 'adamoe', '--num-experts', '4', '--top-k', '1']
    + ['--set', 'function_preserving_init=true'],
    'adamoe_e4_k2': ['--routing-mode', 'adamoe', '--num-experts', '4', '--top-k', '2'],
    'adamoe_e8_k1': ['--routing-mode', 'adamoe', '--num-experts', '8', '--top-k', '1'],
}
BASE = 'base'  # stage A's checkpoint, not fine-tuned, evaluated like a variant
MAIN_VARIANTS = ('dense', 'vanilla_e4_k1', 'adamoe_e4_k1', 'adamoe_e4_k1_fp')  # (a)-(d): every fine-tuning seed
PIXELS = 'adamoe_e4_k1_fp_pixels'  # the best-expected variant trained without the privileged state
VARIANTS[PIXELS] = VARIANTS['adamoe_e4_k1_fp']
LANGUAGE_TESTS = {'held_out': ['--phrasing', 'held_out'], 'swap': ['--swap']}


def run(cmd: list[str], log: Path) -> None:
    """Run one step with its output appended to `log`; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open('a') as fh:
        fh.write(f'$ {" ".join(cmd)}\n')
        fh.flush()
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=os.environ.copy())
    if proc.returncode != 0:
        tail = '\n'.join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f'{cmd[0]} {cmd[1] if len(cmd) > 1 else ""} failed ({proc.returncode}); {log}:\n{tail}')


def done_marker(folder: Path) -> Path:
    return folder / 'DONE.json'


def mark_done(folder: Path, **facts: object) -> None:
    done_marker(folder).write_text(json.dumps(facts, indent=2) + '\n')


# ---- collect ---------------------------------------------------------------------------------------------------
def collect(args: argparse.Namespace) -> Path:
    """Demonstrations in chunks of seeds (a chunk left half-done by a stop is recorded again), then merged."""
    dataset = args.work / 'dataset'
    if done_marker(dataset).exists():
        done = json.loads(done_marker(dataset).read_text())  # (markers older than recovery demos: without them)
        if (done['demos'], done.get('recovery', False)) == (args.demos, args.recovery_demos):
            return dataset  # (asked for more demos: the new chunks are recorded and everything merged again)
    chunks = []
    for i in range(-(-args.demos // args.chunk)):
        chunk = args.work / 'demos' / f'chunk_{i:02d}'
        chunks.append(chunk)
        if done_marker(chunk).exists() and json.loads(done_marker(chunk).read_text()).get('recovery', False) == (
            args.recovery_demos
        ):
            continue
        shutil.rmtree(chunk, ignore_errors=True)
        first_seed = TRAIN_FIRST_SEED + i * args.seeds_per_chunk  # disjoint seed blocks, below the held-out ones
        assert first_seed + args.seeds_per_chunk <= SELECTION_FIRST_SEED, 'training seeds would reach held-out seeds'
        episodes = min(args.chunk, args.demos - i * args.chunk)
        # fmt: off
        run([sys.executable, '-m', 'adamoe_ros.closed_loop.collect', '--scene', SCENE, '--root', str(chunk / 'data'),
             '--episodes', str(episodes), '--first-seed', str(first_seed), '--repo-id', REPO_ID,
             '--real-time-factor', str(args.collect_rtf), *(['--recovery'] if args.recovery_demos else [])],
            args.results / 'logs' / 'collect.log')
        # fmt: on
        mark_done(chunk, episodes=episodes, first_seed=first_seed, recovery=args.recovery_demos)
    from lerobot.datasets.aggregate import aggregate_datasets

    shutil.rmtree(dataset, ignore_errors=True)
    aggregate_datasets([REPO_ID] * len(chunks), REPO_ID, roots=[c / 'data' for c in chunks], aggr_root=dataset)
    mark_done(dataset, chunks=len(chunks), demos=args.demos, recovery=args.recovery_demos)
    return dataset


def joints_only(dataset: Path, out: Path) -> Path:
    """Derive the demonstrations with the joints alone as the state: a policy that must find the objects in pixels.

    Derived rather than recorded again, so the two pipelines differ in nothing but the state they see.
    """
    if done_marker(out).exists():
        return out
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from adamoe_ros.sim.robot import SO101
    from lerobot_policy_adamoe.decoded_dataset import CACHE_DIR

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(dataset, out, ignore=shutil.ignore_patterns(CACHE_DIR, done_marker(dataset).name))
    info_path = out / 'meta' / 'info.json'
    info = json.loads(info_path.read_text())
    state = info['features']['observation.state']
    joints = len(SO101.joint_names)
    if state['names'][:joints] != list(SO101.joint_names):
        raise ValueError(f'{dataset}: the state {state["names"]} does not begin with the joints {SO101.joint_names}')
    state.update(shape=[joints], names=state['names'][:joints])
    info_path.write_text(json.dumps(info, indent=4))
    stats_path = out / 'meta' / 'stats.json'
    stats = json.loads(stats_path.read_text())
    stats['observation.state'] = {
        name: value if name == 'count' else value[:joints] for name, value in stats['observation.state'].items()
    }
    stats_path.write_text(json.dumps(stats, indent=4))
    per_episode = [f'stats/observation.state/{name}' for name in stats['observation.state'] if name != 'count']
    for columns, parquet in [(['observation.state'], 'data'), (per_episode, 'meta/episodes')]:
        for path in sorted((out / parquet).glob('*/*.parquet')):
            table = pq.read_table(path)
            for column in columns:
                sliced = pc.list_slice(table[column], 0, joints)
                table = table.set_column(table.schema.get_field_index(column), column, sliced)
            pq.write_table(table, path)
    mark_done(out, derived_from=str(dataset), state=state['names'])
    return out


# ---- training, export, evaluation ------------------------------------------------------------------------------
def train(
    out: Path,
    dataset: Path,
    steps: int,
    seed: int,
    threads: int,
    lr_scale: float,
    extra: list[str],
    args: argparse.Namespace,
) -> Path:
    """adamoe-train into `out` unless its final checkpoint exists; resumes a stopped run of the same recipe."""
    final = out / 'checkpoints' / 'last' / 'pretrained_model'
    if done_marker(out).exists():
        return final
    # fmt: off
    recipe = ['--dataset-root', str(dataset), '--repo-id', REPO_ID, '--output-dir', str(out), '--steps', str(steps),
              '--batch-size', str(args.batch_size), '--seed', str(seed), '--lr-scale', str(lr_scale), *extra]
    # fmt: on
    resume = ['--resume'] if final.exists() else []
    recipe_file = out / 'recipe.json'
    if resume and (not recipe_file.exists() or json.loads(recipe_file.read_text()) != recipe):
        raise RuntimeError(f'{out} holds checkpoints of another recipe; delete it to train {recipe}')
    out.mkdir(parents=True, exist_ok=True)
    recipe_file.write_text(json.dumps(recipe) + '\n')
    began = time.monotonic()
    run(
        # --decode-once changes how frames are read, not which: it is not part of the recipe. A resume needs only
        # the newest checkpoint; keeping all of them filled the disk (about 11 GB per 40000-step stage A).
        ['adamoe-train', *recipe, '--threads', str(threads), '--save-every', str(args.save_every)]
        + ['--keep-checkpoints', '1', '--decode-once', *resume],
        out / 'train.log',
    )
    mark_done(out, train_time_s=round(time.monotonic() - began, 1), threads=threads, resumed=bool(resume))
    return final


@dataclass(frozen=True)
class Job:
    """One fine-tuned model: its variant, fine-tuning seed and index among the seeds (its evaluation block)."""

    variant: str
    seed: int
    index: int

    @property
    def name(self) -> str:
        return f'{self.variant}/seed{self.seed}'


def finetune_export_evaluate(job: Job, pretrained: Path, dataset: Path, args: argparse.Namespace) -> None:
    """Stage B for one job, then its bundle and its evaluations (each step skipped when done)."""
    work, results = args.work / job.name, args.results / job.name
    results.mkdir(parents=True, exist_ok=True)
    extra = ['--upcycle-from', str(pretrained), *VARIANTS[job.variant]]
    final = train(work / 'train', dataset, args.finetune_steps, job.seed, 1, args.finetune_lr_scale, extra, args)
    shutil.copy(work / 'train' / 'train_log.jsonl', results / 'train_log.jsonl')
    if args.stop_after != 'finetune':
        export_evaluate(job, final, dataset, args, args.episodes)


def export_evaluate(job: Job, checkpoint: Path, dataset: Path, args: argparse.Namespace, episodes: int) -> None:
    """Export `checkpoint` to a bundle and evaluate it on the job's block of held-out seeds (each step once)."""
    work, results = args.work / job.name, args.results / job.name
    results.mkdir(parents=True, exist_ok=True)
    bundle = work / 'bundle'
    if not (bundle / 'bundle.json').exists():
        run(['adamoe-export', str(checkpoint), str(bundle), '--dataset-root', str(dataset)], results / 'stages.log')
    if args.stop_after == 'export':
        return
    first_seed = SELECTION_FIRST_SEED + job.index * args.episodes
    evaluations = {'eval': []}
    if job.variant in (BASE, *MAIN_VARIANTS) and job.index == 0:
        evaluations.update(LANGUAGE_TESTS)
    for name, extra_eval in evaluations.items():
        out = results / f'{name}.json'
        if out.exists():
            continue
        plot = ['--plot', str(results / 'expert_usage.png')] if name == 'eval' else []
        # fmt: off
        run([sys.executable, '-m', 'adamoe_ros.closed_loop.direct_eval', '--bundle', str(bundle), '--scene', SCENE,
             '--episodes', str(episodes if name == 'eval' else args.episodes), '--first-seed', str(first_seed),
             '--out', str(out), *plot, *extra_eval], results / 'stages.log')
        # fmt: on


def base_job(args: argparse.Namespace) -> Job:
    """Stage A's checkpoint as a job: named by its training seed, evaluated from the first evaluation block."""
    return Job(BASE, args.pretrain_seed, 0)


def evaluate_base(pretrained: Path, dataset: Path, args: argparse.Namespace) -> None:
    """Stage A's checkpoint itself, on every fine-tuning seed's evaluation block at once (the variants' seeds)."""
    job = base_job(args)
    (args.results / job.name).mkdir(parents=True, exist_ok=True)
    shutil.copy(args.work / 'pretrain' / 'train_log.jsonl', args.results / job.name / 'train_log.jsonl')
    export_evaluate(job, pretrained, dataset, args, len(args.seeds) * args.episodes)


def dense_base(args: argparse.Namespace) -> list[str]:
    """adamoe-train arguments of stage A's dense base; stage B's variants inherit its shape by upcycling."""
    encoder = ['--text-encoder', args.text_encoder] if args.text_encoder else []
    return ['--routing-mode', 'dense', *encoder, *(arg for field in args.base_model for arg in ('--set', field))]


def jobs(args: argparse.Namespace) -> list[Job]:
    """Return the jobs: main variants seed by seed first (an early stop leaves comparable sets), then the others."""
    main = [Job(v, s, i) for i, s in enumerate(args.seeds) for v in MAIN_VARIANTS if v in args.variants]
    extra = [Job(v, args.seeds[0], 0) for v in args.variants if v not in (*MAIN_VARIANTS, PIXELS)]
    return main + extra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work', type=Path, default=ROOT / 'outputs' / 'ablation_multitask')
    parser.add_argument('--results', type=Path, default=ROOT / 'results' / 'ablation_multitask')
    parser.add_argument('--demos', type=int, default=480, help='successful scripted episodes (80 per task)')
    parser.add_argument(
        '--recovery-demos', action='store_true', help='the expert regrasps misses and disturbs some first grasps'
    )
    parser.add_argument('--chunk', type=int, default=30, help='episodes per collection chunk')
    parser.add_argument('--seeds-per-chunk', type=int, default=50, help='training seeds reserved per chunk')
    parser.add_argument('--collect-rtf', type=float, default=3.0, help='real-time factor of the collection sim')
    parser.add_argument('--pretrain-steps', type=int, default=40000)
    parser.add_argument('--pretrain-seed', type=int, default=0, help="stage A's training seed (its run of the recipe)")
    parser.add_argument('--finetune-steps', type=int, default=4000)
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--lr-scale', type=float, default=20.0, help='stage A: x the reference learning rates')
    parser.add_argument('--finetune-lr-scale', type=float, default=20.0, help='stage B: x the reference rates')
    parser.add_argument(
        '--base-model',
        nargs='*',
        # Measured (results/ablation_multitask/single_task/, two_task/): the wider expert raises one task's success;
        # training the random-init VLM overfits one task but is what lets the instruction choose the cube (2 to 30/60).
        default=['expert_width_multiplier=2.0', 'train_expert_only=false'],
        metavar='KEY=VALUE',
        help='AdaMoEConfig fields of the dense base (adamoe-train --set)',
    )
    parser.add_argument('--save-every', type=int, default=500, help='checkpoints a stopped run resumes from')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2], help='fine-tuning seeds')
    parser.add_argument(
        '--text-encoder',
        choices=tuple(TEXT_ENCODERS),
        help="stage A's frozen pretrained instruction encoder (adamoe-train --text-encoder); stage B inherits it",
    )
    parser.add_argument(
        '--variants', nargs='*', default=list(VARIANTS), choices=list(VARIANTS), help='none: stage A alone (base)'
    )
    parser.add_argument('--episodes', type=int, default=36, help='evaluation episodes per model (6 per task)')
    parser.add_argument('--parallel', type=int, default=2, help='fine-tuning jobs at once (one thread each)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='threads of each pretraining job (2 contend with anything else: 3x slower)',
    )
    parser.add_argument('--stop-after', choices=STAGES, default='report')
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)

    dataset = collect(args)
    if args.stop_after == 'collect':
        return
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        # The cameras-only chain takes one worker from the start, so its base trains beside stage A (this thread).
        futures = {Job(PIXELS, args.seeds[0], 0): pool.submit(pixels, dataset, args)} if PIXELS in args.variants else {}
        pretrained = train(
            args.work / 'pretrain',
            dataset,
            args.pretrain_steps,
            args.pretrain_seed,
            args.threads,
            args.lr_scale,
            dense_base(args),
            args,
        )
        if args.stop_after != 'pretrain':
            futures[base_job(args)] = pool.submit(evaluate_base, pretrained, dataset, args)
            futures |= {
                job: pool.submit(finetune_export_evaluate, job, pretrained, dataset, args) for job in jobs(args)
            }
        failed = []
        for job, future in futures.items():
            try:
                future.result()
                print(f'{job.name}: done', flush=True)
            except Exception as err:  # noqa: BLE001 - report the job, keep the others
                failed.append(job.name)
                print(f'{job.name}: FAILED: {err}', flush=True)
    if args.stop_after != 'report':
        return
    write_report(args.results, [BASE, *VARIANTS], command=' '.join(['python scripts/ablation.py', *sys.argv[1:]]))
    if failed:
        raise SystemExit(f'failed: {failed}')


def pixels(dataset: Path, args: argparse.Namespace) -> None:
    """Run the cameras-only chain: its dataset, its dense base (stage A's recipe), then PIXELS fine-tuned from it."""
    joints_dataset = joints_only(dataset, args.work / 'dataset_pixels')
    out = args.work / 'pixels_pretrain'
    base = train(out, joints_dataset, args.pretrain_steps, 0, args.threads, args.lr_scale, dense_base(args), args)
    shutil.copy(out / 'train_log.jsonl', args.results / 'pixels_pretrain_log.jsonl')
    if args.stop_after != 'pretrain':
        finetune_export_evaluate(Job(PIXELS, args.seeds[0], 0), base, joints_dataset, args)


if __name__ == '__main__':
    main()
