"""The policy bundles shipped in this package, by folder; a `bundle_path` parameter may name one of them."""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).resolve().parent
PICK_PLACE = SHIPPED / 'so101_pick_place'  # the pick_place scene: one cube, its position as privileged state
MULTITASK = SHIPPED / 'so101_multitask'  # the multitask scene: six tasks, the instruction decides (the demo's)


def resolve_bundle_path(bundle_path: str) -> Path:
    """Return the bundle folder: a path as given, or the name of a bundle shipped here."""
    if not bundle_path:
        raise ValueError('parameter bundle_path is empty')
    path = Path(bundle_path).expanduser()
    shipped = SHIPPED / bundle_path
    if not path.exists() and '/' not in bundle_path and shipped.is_dir():
        return shipped
    return path
