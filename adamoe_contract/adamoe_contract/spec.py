"""Typed view of bundle.json, with validation that names the offending file and field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adamoe_contract.bundle_format import (
    EXTERNAL_DATA,
    GRAPH_FILES,
    METADATA_FILE,
    MODEL_FAMILIES,
    PI05,
    READABLE_VERSIONS,
    SMOLVLA,
    content_files,
    external_data_file,
)

# LeRobot normalisation modes the bundle can carry, with the statistics each one needs.
NORMALIZATION_STATS = {
    'MEAN_STD': ('mean', 'std'),
    'MIN_MAX': ('min', 'max'),
    'QUANTILES': ('q01', 'q99'),
    'QUANTILE10': ('q10', 'q90'),
    'IDENTITY': (),
}
# Where resize_with_pad puts the padding: SmolVLA pads left/top, openpi's PI0/PI05 centre the image.
IMAGE_PADDINGS = ('left_top', 'center')
# "dense" is the plain base model: no MoE layers, no routing outputs.
ROUTING_MODES = ('adamoe', 'vanilla', 'dense')


class BundleError(Exception):
    """A policy bundle is missing, malformed or inconsistent; the message names the file and the problem."""


@dataclass(frozen=True)
class TensorSpec:
    """Static shape and dtype of one graph input or output."""

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class NormStats:
    """LeRobot normaliser parameters for one feature (state or action)."""

    mode: str
    eps: float
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    q01: np.ndarray | None = None
    q99: np.ndarray | None = None
    q10: np.ndarray | None = None
    q90: np.ndarray | None = None


@dataclass(frozen=True)
class TokenizerSpec:
    """How the instruction is turned into the fixed-length token input, exactly as at training time."""

    file: str
    max_length: int
    pad_token_id: int
    padding_side: str
    append_newline: bool
    add_special_tokens: bool
    # PI05 only: the normalised state is discretised into this many bins and written into the prompt.
    state_bins: int | None = None


@dataclass(frozen=True)
class ImagePreprocessing:
    """resize_with_pad target, padding convention and pad value (pixels in [0, 1], before scaling to [-1, 1])."""

    model_height: int
    model_width: int
    pad_value: float
    padding: str


@dataclass(frozen=True)
class RoutingSpec:
    """Which action-expert layers are MoE layers and how they route."""

    mode: str
    num_layers: int
    num_experts: int
    top_k: int
    layer_indices: tuple[int, ...]
    shared_expert: bool = False


@dataclass(frozen=True)
class BundleSpec:
    """Everything the runtime needs to know about a bundle besides the graphs themselves."""

    path: Path
    bundle_id: str
    camera_names: tuple[str, ...]
    image_size: dict[str, tuple[int, int]]
    state_names: tuple[str, ...]
    joint_names: tuple[str, ...]
    max_state_dim: int
    max_action_dim: int
    fps: float
    dt: float
    horizon: int
    num_flow_steps: int
    image_preprocessing: ImagePreprocessing
    state_norm: NormStats
    action_norm: NormStats
    tokenizer: TokenizerSpec
    routing: RoutingSpec
    graphs: dict[str, dict[str, dict[str, TensorSpec]]]
    precision: str
    model_family: str
    source: dict[str, Any] = field(default_factory=dict)
    # graph file -> its ONNX external-data file (empty: every graph holds its own weights)
    external_data: dict[str, str] = field(default_factory=dict)

    @property
    def content_files(self) -> tuple[str, ...]:
        """Files the bundle_id covers, external-data files included."""
        return content_files(self.external_data.values())

    @property
    def state_dim(self) -> int:
        """Length of the (unpadded) state vector the policy expects."""
        return len(self.state_names)

    @property
    def action_dim(self) -> int:
        """Number of action values per step (one per joint)."""
        return len(self.joint_names)


class _Reader:
    """Reads required fields from a JSON object and reports missing/ill-typed ones by dotted path."""

    def __init__(self, data: dict[str, Any], where: str, file: Path) -> None:
        self.data, self.where, self.file = data, where, file

    def fail(self, key: str, problem: str) -> BundleError:
        return BundleError(f"{self.file}: field '{self.where}{key}' {problem}")

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise self.fail(key, 'is missing')
        value = self.data[key]
        if kind in (int, float) and isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(key, f'must be {getattr(kind, "__name__", kind)}, got {type(value).__name__}')
        return value

    def get_list(self, key: str, item_kind: type) -> list[Any]:
        values = self.get(key, list)
        for i, value in enumerate(values):
            if item_kind is int and isinstance(value, bool) or not isinstance(value, item_kind):
                raise self.fail(f'{key}[{i}]', f'must be {item_kind.__name__}, got {type(value).__name__}')
        return values

    def child(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict), f'{self.where}{key}.', self.file)


def _norm_stats(reader: _Reader, dim: int) -> NormStats:
    mode = reader.get('mode', str)
    if mode not in NORMALIZATION_STATS:
        raise reader.fail('mode', f'must be one of {tuple(NORMALIZATION_STATS)}, got {mode!r}')
    arrays: dict[str, np.ndarray] = {}
    for key in NORMALIZATION_STATS[mode]:
        values = np.asarray(reader.get(key, list), dtype=np.float32)
        if values.shape != (dim,) or not np.all(np.isfinite(values)):
            raise reader.fail(key, f'must be {dim} finite numbers, got shape {values.shape}')
        arrays[key] = values
    return NormStats(mode=mode, eps=float(reader.get('eps', (int, float))), **arrays)


def _tensor_specs(reader: _Reader) -> dict[str, TensorSpec]:
    specs = {}
    for name in reader.data:
        entry = reader.child(name)
        shape = entry.get('shape', list)
        if not all(isinstance(d, int) and d > 0 for d in shape):
            raise entry.fail('shape', f'must be positive integers (static shapes), got {shape}')
        specs[name] = TensorSpec(shape=tuple(shape), dtype=entry.get('dtype', str))
    return specs


def _external_data(root: _Reader) -> dict[str, str]:
    if EXTERNAL_DATA not in root.data:
        return {}
    entries = root.get(EXTERNAL_DATA, dict)
    for graph, data_file in entries.items():
        if graph not in GRAPH_FILES:
            raise root.fail(f'{EXTERNAL_DATA}.{graph}', f'names no graph of the bundle {GRAPH_FILES}')
        # One fixed name per graph: nothing outside the bundle folder, nothing the hash would not cover.
        if data_file != external_data_file(graph):
            raise root.fail(f'{EXTERNAL_DATA}.{graph}', f'must be {external_data_file(graph)!r}, got {data_file!r}')
    return dict(entries)


def load_spec(folder: Path) -> BundleSpec:
    """Parse and validate `<folder>/bundle.json`."""
    folder = Path(folder)
    file = folder / METADATA_FILE
    if not folder.is_dir():
        raise BundleError(f'{folder}: bundle folder does not exist')
    if not file.is_file():
        raise BundleError(f'{file}: missing (not a policy bundle folder)')
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f'{file}: not valid JSON ({exc})') from exc
    return spec_from_dict(data, folder)


def spec_from_dict(data: Any, folder: Path) -> BundleSpec:
    """Validate bundle.json content (already parsed) belonging to `folder`."""
    file = Path(folder) / METADATA_FILE
    if not isinstance(data, dict):
        raise BundleError(f'{file}: top level must be a JSON object')
    root = _Reader(data, '', file)
    version = root.get('format_version', int)
    if version not in READABLE_VERSIONS:
        raise BundleError(
            f'{file}: format_version {version} is not supported '
            f'(this adamoe_contract reads versions {", ".join(map(str, READABLE_VERSIONS))})'
        )
    legacy = version == 1  # before model families: every version-1 bundle is a SmolVLA bundle
    family = SMOLVLA if legacy else root.get('model_family', str)
    if family not in MODEL_FAMILIES:
        raise root.fail(
            'model_family', f'must be one of {MODEL_FAMILIES}, got {family!r} (a model this runtime cannot run)'
        )
    cameras = root.get_list('cameras', dict)
    if not cameras:
        raise root.fail('cameras', 'must name at least one camera')
    image_size, names, orders = {}, [], set()
    for i, cam in enumerate(cameras):
        cam_reader = _Reader(cam, f'cameras[{i}].', file)
        name = cam_reader.get('name', str)
        names.append(name)
        image_size[name] = (cam_reader.get('height', int), cam_reader.get('width', int))
        orders.add(cam_reader.get('channel_order', str))
    if orders != {'RGB'}:
        raise root.fail('cameras', f"channel_order must be 'RGB' for every camera, got {sorted(orders)}")
    state_names = tuple(root.get_list('state_names', str))
    joint_names = tuple(root.get_list('joint_names', str))
    if list(state_names[: len(joint_names)]) != list(joint_names):
        raise root.fail('state_names', f'must start with the joint names {list(joint_names)}')
    max_state_dim = root.get('max_state_dim', int)
    max_action_dim = root.get('max_action_dim', int)
    if len(state_names) > max_state_dim or len(joint_names) > max_action_dim:
        raise root.fail('state_names', 'exceed max_state_dim / max_action_dim')
    img = root.child('image_preprocessing')
    tok = root.child('tokenizer')
    routing = root.child('routing')
    layer_indices = tuple(routing.get_list('layer_indices', int))
    graphs_reader = root.child('graphs')
    graphs = {}
    for graph in ('prefix', 'denoise'):
        g = graphs_reader.child(graph)
        graphs[graph] = {'inputs': _tensor_specs(g.child('inputs')), 'outputs': _tensor_specs(g.child('outputs'))}
    norm = root.child('normalization')
    spec = BundleSpec(
        path=Path(folder),
        bundle_id=root.get('bundle_id', str),
        camera_names=tuple(names),
        image_size=image_size,
        state_names=state_names,
        joint_names=joint_names,
        max_state_dim=max_state_dim,
        max_action_dim=max_action_dim,
        fps=float(root.get('fps', (int, float))),
        dt=float(root.get('dt', (int, float))),
        horizon=root.get('horizon', int),
        num_flow_steps=root.get('num_flow_steps', int),
        image_preprocessing=ImagePreprocessing(
            model_height=img.get('model_height', int),
            model_width=img.get('model_width', int),
            pad_value=float(img.get('pad_value', (int, float))),
            padding='left_top' if legacy else img.get('padding', str),
        ),
        state_norm=_norm_stats(norm.child('state'), len(state_names)),
        action_norm=_norm_stats(norm.child('action'), len(joint_names)),
        tokenizer=TokenizerSpec(
            file=tok.get('file', str),
            max_length=tok.get('max_length', int),
            pad_token_id=tok.get('pad_token_id', int),
            padding_side=tok.get('padding_side', str),
            append_newline=tok.get('append_newline', bool),
            add_special_tokens=tok.get('add_special_tokens', bool),
            state_bins=tok.get('state_bins', int) if 'state_bins' in tok.data else None,
        ),
        routing=RoutingSpec(
            mode=routing.get('mode', str),
            num_layers=len(layer_indices),
            num_experts=routing.get('num_experts', int),
            top_k=routing.get('top_k', int),
            layer_indices=layer_indices,
            shared_expert=bool(routing.data.get('shared_expert', False)),
        ),
        graphs=graphs,
        precision=root.get('precision', str),
        model_family=family,
        source=dict(data.get('source', {})),
        external_data=_external_data(root),
    )
    _check_consistency(spec, root)
    return spec


def _check_consistency(spec: BundleSpec, root: _Reader) -> None:
    if spec.horizon <= 0 or spec.num_flow_steps <= 0:
        raise root.fail('horizon', 'and num_flow_steps must be positive')
    if abs(spec.dt * spec.fps - 1.0) > 1e-6:
        raise root.fail('dt', f'must be 1/fps (dt={spec.dt}, fps={spec.fps})')
    if spec.tokenizer.padding_side != 'right':
        raise root.fail('tokenizer.padding_side', "must be 'right' (LeRobot's policies pad on the right)")
    if spec.image_preprocessing.padding not in IMAGE_PADDINGS:
        raise root.fail(
            'image_preprocessing.padding', f'must be one of {IMAGE_PADDINGS}, got {spec.image_preprocessing.padding!r}'
        )
    # PI05's prompt carries the discretised state; no other family tokenises it.
    bins = spec.tokenizer.state_bins
    if (spec.model_family == PI05) != (bins is not None):
        raise root.fail(
            'tokenizer.state_bins', f'is required in a {PI05} bundle and only there (this is {spec.model_family})'
        )
    if bins is not None and bins < 2:
        raise root.fail('tokenizer.state_bins', f'must be at least 2, got {bins}')
    if spec.routing.mode not in ROUTING_MODES:
        raise root.fail('routing.mode', f'must be one of {ROUTING_MODES}, got {spec.routing.mode!r}')
    if spec.routing.mode == 'dense' and spec.routing.num_layers:
        raise root.fail('routing.layer_indices', 'must be empty for a dense bundle')
    if spec.routing.mode != 'dense' and not 1 <= spec.routing.top_k <= spec.routing.num_experts:
        raise root.fail('routing.top_k', 'must be in 1..num_experts')
