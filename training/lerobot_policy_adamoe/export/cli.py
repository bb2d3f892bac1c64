"""`adamoe-export <checkpoint> <bundle_dir>`: export a trained policy to a runtime bundle and validate it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lerobot_policy_adamoe.export.external_data import EXTERNAL_DATA_THRESHOLD

PARITY_TOLERANCE = 1e-4
# fp16 graphs against the fp32 PyTorch policy, in robot units (the float16 rounding of 10 Euler steps).
FP16_TOLERANCE = 5e-2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='adamoe-export', description=__doc__)
    parser.add_argument('checkpoint', type=Path, help='LeRobot pretrained_model folder')
    parser.add_argument('bundle_dir', type=Path, help='output bundle folder (created or overwritten)')
    parser.add_argument(
        '--dataset-root',
        type=Path,
        help="dataset for state/action names and fps (default: the one in the checkpoint's train_config.json)",
    )
    parser.add_argument('--state-names', help='comma-separated state names (overrides the dataset)')
    parser.add_argument('--joint-names', help='comma-separated action/joint names (overrides the dataset)')
    parser.add_argument('--fps', type=float, help='control rate in Hz (overrides the dataset)')
    # Compact storage restores float32 weights inside a float32 graph; a float16 graph has no float32 weights to shrink.
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument('--fp16', action='store_true', help='export float16 graphs (validated with a looser bound)')
    precision.add_argument(
        '--compact-text-encoder',
        action='store_true',
        help="store a frozen text encoder's tables in int8 and matrices in float16 (about 3x smaller)",
    )
    parser.add_argument(
        '--expert-graph',
        choices=('sparse', 'dense'),
        default='sparse',
        help='MoE layers as unrolled per-expert token subsets (top-k FLOPs) or all experts densely',
    )
    parser.add_argument(
        '--external-data-gib',
        type=float,
        default=EXTERNAL_DATA_THRESHOLD / 1024**3,
        help='graphs together larger than this keep their weights in <graph>.onnx.data (ONNX external data)',
    )
    parser.add_argument('--validate-cases', type=int, default=3, help='random observations for the parity check')
    parser.add_argument('--threads', type=int, default=1, help='torch and ONNX Runtime threads')
    return parser


def _names(args: argparse.Namespace):  # noqa: ANN202
    from lerobot_policy_adamoe.export.checkpoint import dataset_names_from_root, dataset_root_from_checkpoint
    from lerobot_policy_adamoe.export.metadata import DatasetNames

    root = args.dataset_root or dataset_root_from_checkpoint(args.checkpoint)
    base = dataset_names_from_root(root) if root and (root / 'meta' / 'info.json').is_file() else None
    state = args.state_names.split(',') if args.state_names else (base.state_names if base else None)
    joints = args.joint_names.split(',') if args.joint_names else (base.joint_names if base else None)
    fps = args.fps or (base.fps if base else None)
    if state is None or joints is None or fps is None:
        raise SystemExit(
            'adamoe-export: state/joint names and fps unknown: pass --dataset-root or '
            '--state-names, --joint-names and --fps'
        )
    return DatasetNames(state_names=state, joint_names=joints, fps=fps)


def main(argv: list[str] | None = None) -> int:
    """Export, then run PyTorch and ONNX Runtime on the same inputs and noise and report the difference."""
    args = _parser().parse_args(argv)
    console = Console(stderr=True)
    names = _names(args)
    with Progress(SpinnerColumn(), TextColumn('{task.description}'), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task('importing torch / lerobot', total=None)
        import torch

        # The parity check runs the bundle in the runtime's own engine (optional dependency "runtime").
        from adamoe_ros.engine import PolicyEngine
        from lerobot_policy_adamoe.export.bundle_writer import write_bundle
        from lerobot_policy_adamoe.export.checkpoint import load_checkpoint
        from lerobot_policy_adamoe.export.reference import max_abs_difference

        torch.set_num_threads(args.threads)
        bar.update(task, description=f'loading {args.checkpoint}')
        ckpt = load_checkpoint(args.checkpoint)
        if args.compact_text_encoder and getattr(ckpt.policy.config, 'text_encoder', None) is None:
            raise SystemExit(f'adamoe-export: --compact-text-encoder: {args.checkpoint} has no text_encoder')
        source = {'checkpoint': str(args.checkpoint.resolve())}

        def report(step: str) -> None:
            bar.update(task, description=f'exporting: {step}')

        bundle_id = write_bundle(
            ckpt.policy,
            args.bundle_dir,
            names,
            ckpt.stats,
            source,
            fp16=args.fp16,
            eps=ckpt.eps,
            progress=report,
            expert_graph=args.expert_graph,
            external_data_threshold=int(args.external_data_gib * 1024**3),
            preprocessor=ckpt.preprocessor,
            compact_text_encoder_weights=args.compact_text_encoder,
        )
        bar.update(task, description='validating: PyTorch vs ONNX Runtime')
        engine = PolicyEngine.from_bundle(args.bundle_dir, intra_op_threads=args.threads)
        reference = ckpt.policy
        if args.compact_text_encoder:
            from lerobot_policy_adamoe.export.compact_encoder import compact_rounded_copy

            # The bundle must match the policy with the stored values exactly; the rounding's effect is reported.
            reference = compact_rounded_copy(ckpt.policy)
            rounding = max_abs_difference(
                ckpt.policy, ckpt.preprocessor, ckpt.postprocessor, engine, args.validate_cases
            )
        diff = max_abs_difference(reference, ckpt.preprocessor, ckpt.postprocessor, engine, args.validate_cases)
    tolerance = FP16_TOLERANCE if args.fp16 else PARITY_TOLERANCE
    verdict = 'OK' if diff < tolerance else 'MISMATCH'
    print(
        f'bundle {args.bundle_dir} ({bundle_id[:12]}), routing {engine.spec.routing.mode}, '
        f'provider {engine.providers[0]}'
    )
    print(
        f'max |ORT - PyTorch| of the action chunk over {args.validate_cases} cases: {diff:.3g} '
        f'(tolerance {tolerance:g}) {verdict}'
    )
    if args.compact_text_encoder:
        print(f'compact text encoder: max |ORT - float32 PyTorch| {rounding:.3g} (the rounding itself, not checked)')
    return 0 if verdict == 'OK' else 1


if __name__ == '__main__':
    sys.exit(main())
