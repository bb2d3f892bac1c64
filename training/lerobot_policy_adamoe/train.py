"""`adamoe-train`: train an AdaMoE policy on a local LeRobot dataset with a progress bar and a JSONL log.

A lean single-process loop for small CPU runs (the pipeline's demo training). It writes LeRobot-format
checkpoints (`checkpoints/<step>/pretrained_model` + `training_state`, `checkpoints/last`), so the result
loads with `AdaMoEPolicy.from_pretrained`, exports with `adamoe-export` and resumes with `--resume`.
Multi-GPU training goes through `lerobot-train` + accelerate instead (see training/README.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from adamoe_contract.spec import ROUTING_MODES
from lerobot_policy_adamoe.decoded_dataset import DecodedDataset
from lerobot_policy_adamoe.moe import RoutingCapture, capture_routing
from lerobot_policy_adamoe.text_encoder import TEXT_ENCODERS

log = logging.getLogger('adamoe-train')


@dataclass
class TrainOptions:
    """Everything one training run needs; mirrors the CLI flags."""

    dataset_root: Path
    repo_id: str
    output_dir: Path
    tasks: list[str] | None = None
    steps: int = 2000
    batch_size: int = 8
    seed: int = 0
    routing_mode: str = 'adamoe'
    num_experts: int = 4
    top_k: int = 1
    upcycle_from: Path | None = None
    backbone: Path | None = None
    text_encoder: str | None = None
    lr_scale: float = 1.0
    num_workers: int = 0
    decode_once: bool = False
    threads: int = 2
    log_every: int = 10
    save_every: int = 0
    keep_checkpoints: int = 0
    resume: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse `key=value` (value as JSON when possible, else a string)."""
    if '=' not in text:
        raise argparse.ArgumentTypeError(f'--set expects key=value, got {text!r}')
    key, raw = text.split('=', 1)
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def build_config(options: TrainOptions) -> Any:
    """AdaMoEConfig from the dense checkpoint's base fields (when upcycling) or a tiny local backbone."""
    from lerobot.configs import PreTrainedConfig

    from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig, AdaMoEOptions
    from lerobot_policy_adamoe.tiny_base import make_tiny_backbone, tiny_smolvla_kwargs

    kwargs: dict[str, Any]
    if options.upcycle_from is not None:
        dense = PreTrainedConfig.from_pretrained(str(options.upcycle_from))
        # The base's architecture and data handling carry over; its recipe (MoE, balance loss, optimizer) does not:
        # an AdaMoE dense base stores learning rates already multiplied by its own --lr-scale.
        recipe = {f.name for f in fields(AdaMoEOptions)} | {'type', 'base'}
        own = {f.name for f in fields(AdaMoEConfig)} - recipe
        kwargs = {f.name: getattr(dense, f.name) for f in fields(dense) if f.name in own}
        kwargs['upcycle_from'] = str(options.upcycle_from)
        if options.text_encoder not in (None, kwargs.get('text_encoder')):
            raise ValueError(f'--text-encoder {options.text_encoder}: the dense base has {kwargs.get("text_encoder")}')
    else:
        backbone = options.backbone
        if backbone is None:
            backbone = options.output_dir / 'backbone'
            if not (backbone / 'config.json').is_file():
                make_tiny_backbone(backbone, text_encoder=options.text_encoder)
        kwargs = {**tiny_smolvla_kwargs(backbone), 'text_encoder': options.text_encoder}
    kwargs.update(
        routing_mode=options.routing_mode,
        num_experts=options.num_experts,
        top_k=options.top_k,
        device='cpu' if not torch.cuda.is_available() else 'cuda',
        push_to_hub=False,
    )
    config = AdaMoEConfig(**kwargs)
    for group in ('base', 'experts', 'router'):
        setattr(config, f'{group}_lr', getattr(config, f'{group}_lr') * options.lr_scale)
    for key, value in options.overrides.items():
        if not hasattr(config, key):
            raise ValueError(f'--set {key}: AdaMoEConfig has no field {key!r}')
        setattr(config, key, tuple(value) if isinstance(getattr(config, key), tuple) else value)
    config.__post_init__()
    return config


def _cycle(loader: torch.utils.data.DataLoader):
    while True:
        yield from loader


def _log_record(
    step: int,
    info: dict[str, Any],
    policy: Any,
    routing: RoutingCapture,
    optimizer: Any,
    grad_norm: float,
    step_s: float,
) -> dict[str, Any]:
    record: dict[str, Any] = {'step': step, 'step_s': round(step_s, 4), 'grad_norm': grad_norm}
    record.update({k: v for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    record['lr'] = {g.get('group_name', str(i)): g['lr'] for i, g in enumerate(optimizer.param_groups)}
    stats = policy.routing_stats(routing)
    if stats is not None:
        record['routing'] = {
            'layer_indices': list(policy.moe_layer_indices),
            'token_fraction': [[round(v, 4) for v in row] for row in stats.token_fraction.tolist()],
            'mean_weight': [[round(v, 4) for v in row] for row in stats.mean_weight.tolist()],
            'balance_loss': [round(v, 6) for v in stats.balance_loss.tolist()],
        }
    return record


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    """Delete all but the newest `keep` step checkpoints (about 140 MB each for the tiny base, with optimizer state).

    Called after `last` points at the newest, so a resume always finds a complete checkpoint.
    """
    steps = sorted((d for d in checkpoints.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))
    for old in steps[:-keep]:
        shutil.rmtree(old)


def train(options: TrainOptions) -> Path:
    """Run training; return the final `pretrained_model` folder."""
    from lerobot.common.train_utils import load_training_state, save_training_state, update_last_checkpoint
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata
    from lerobot.policies.factory import make_policy, make_pre_post_processors

    from lerobot_policy_adamoe.modeling_adamoe import AdaMoEPolicy

    torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    options.output_dir.mkdir(parents=True, exist_ok=True)
    checkpoints = options.output_dir / 'checkpoints'
    last = checkpoints / 'last'
    if options.resume and not (last / 'pretrained_model').is_dir():
        raise FileNotFoundError(f'--resume: no checkpoint at {last}')
    if not options.resume and last.exists():
        raise FileExistsError(f'{options.output_dir} already holds checkpoints; use --resume or a new --output-dir')

    meta = LeRobotDatasetMetadata(options.repo_id, root=options.dataset_root)
    wanted = set(options.tasks or ())
    unknown = sorted(wanted - set(meta.tasks.index))
    if unknown:
        raise ValueError(f'--tasks {unknown}: not tasks of this dataset, which has {sorted(meta.tasks.index)}')
    if options.resume:
        policy = AdaMoEPolicy.from_pretrained(last / 'pretrained_model')
        config = policy.config
        policy.train()
    else:
        config = build_config(options)
        policy = make_policy(config, ds_meta=meta)
    dataset = LeRobotDataset(
        options.repo_id,
        root=options.dataset_root,
        episode_filter=(lambda episode: not wanted.isdisjoint(episode['tasks'])) if wanted else None,
        delta_timestamps=resolve_delta_timestamps(config, meta),
    )
    log.info('training on %d of %d episodes (%d frames)', dataset.num_episodes, meta.total_episodes, len(dataset))
    if options.decode_once:
        dataset = DecodedDataset(dataset)
    # Normalised with the whole dataset's statistics, a subset included: one scale for every model of a study.
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=meta.stats)
    optimizer = config.get_optimizer_preset().build(policy.get_optim_params())
    scheduler = config.get_scheduler_preset().build(optimizer, options.steps)
    step = 0
    if options.resume:
        step, optimizer, scheduler = load_training_state(last.resolve(), optimizer, scheduler)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=options.batch_size,
        shuffle=True,
        drop_last=len(dataset) > options.batch_size,
        num_workers=options.num_workers,
        generator=torch.Generator().manual_seed(options.seed + step),
    )
    batches = _cycle(loader)
    log_path = options.output_dir / 'train_log.jsonl'

    def save(at_step: int) -> Path:
        ckpt = checkpoints / f'{at_step:06d}'
        policy.save_pretrained(ckpt / 'pretrained_model')
        preprocessor.save_pretrained(ckpt / 'pretrained_model')
        postprocessor.save_pretrained(ckpt / 'pretrained_model')
        save_training_state(ckpt, at_step, optimizer, scheduler)
        update_last_checkpoint(ckpt)
        if options.keep_checkpoints:
            prune_checkpoints(checkpoints, options.keep_checkpoints)
        return ckpt / 'pretrained_model'

    policy.train()
    final = last / 'pretrained_model'
    with log_path.open('a') as log_file, tqdm(total=options.steps, initial=step, unit='step', mininterval=1.0) as bar:
        while step < options.steps:
            start = time.perf_counter()
            batch = preprocessor(next(batches))
            with capture_routing() as routing:
                loss, info = policy.forward(batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f'non-finite loss {loss.item()} at step {step}; last checkpoint kept')
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), config.optimizer_grad_clip_norm))
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f'{info["loss"]:.3f}', bal=f'{info.get("balance_loss", 0.0):.3f}')
            if step % options.log_every == 0 or step == options.steps:
                record = _log_record(step, info, policy, routing, optimizer, grad_norm, time.perf_counter() - start)
                log_file.write(json.dumps(record) + '\n')
                log_file.flush()
            if (options.save_every and step % options.save_every == 0) or step == options.steps:
                final = save(step)
    return final


def build_parser() -> argparse.ArgumentParser:
    """CLI flags of adamoe-train."""
    p = argparse.ArgumentParser(prog='adamoe-train', description=__doc__.splitlines()[0])
    p.add_argument('--dataset-root', type=Path, required=True, help='LeRobotDataset folder (meta/, data/)')
    p.add_argument('--repo-id', required=True, help='dataset repo id (e.g. local/so101_pick)')
    p.add_argument('--output-dir', type=Path, required=True)
    p.add_argument('--tasks', nargs='+', metavar='TASK', help="train on these tasks' episodes only (default: all)")
    p.add_argument('--steps', type=int, default=2000)
    p.add_argument('--batch-size', type=int, default=8)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--routing-mode', choices=ROUTING_MODES, default='adamoe')
    p.add_argument('--num-experts', type=int, default=4)
    p.add_argument('--top-k', type=int, default=1)
    p.add_argument('--upcycle-from', type=Path, help='dense LeRobot pretrained_model folder (e.g. smolvla)')
    p.add_argument('--backbone', type=Path, help='local SmolVLM folder; default: a generated tiny one')
    p.add_argument(
        '--text-encoder',
        choices=tuple(TEXT_ENCODERS),
        help='frozen pretrained instruction encoder (default: the backbone token embedding; upcycling: the base one)',
    )
    p.add_argument(
        '--lr-scale',
        type=float,
        default=1.0,
        help='multiply the three group peak LRs (reference values suit long runs; ~20 for tiny)',
    )
    p.add_argument('--num-workers', type=int, default=0)
    p.add_argument(
        '--decode-once',
        action='store_true',
        help='decode the videos once into <dataset-root>/.decoded/ (uint8 on disk) instead of at every sample',
    )
    p.add_argument('--threads', type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument('--log-every', type=int, default=10)
    p.add_argument('--save-every', type=int, default=0, help='0 = only at the end')
    p.add_argument(
        '--keep-checkpoints', type=int, default=0, help='keep only the newest N step checkpoints (0 = all, as LeRobot)'
    )
    p.add_argument('--resume', action='store_true', help='continue from output-dir/checkpoints/last')
    p.add_argument(
        '--set',
        dest='overrides',
        action='append',
        type=parse_override,
        default=[],
        metavar='KEY=VALUE',
        help='any AdaMoEConfig field, value as JSON (repeatable)',
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the adamoe-train console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    values = vars(args)
    values['overrides'] = dict(values['overrides'])
    options = TrainOptions(**values)
    if options.steps < 1 or options.batch_size < 1 or not math.isfinite(options.lr_scale) or options.lr_scale <= 0:
        raise SystemExit('adamoe-train: --steps, --batch-size and --lr-scale must be positive')
    if options.keep_checkpoints < 0:
        raise SystemExit('adamoe-train: --keep-checkpoints must be 0 (all) or positive')
    final = train(options)
    print(f'adamoe-train: final checkpoint {final}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
