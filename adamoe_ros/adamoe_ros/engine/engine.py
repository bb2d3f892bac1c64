"""PolicyEngine: runs an exported policy bundle (SmolVLA, PI0 or PI05 base, AdaMoE or dense) with ONNX Runtime."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from adamoe_contract import bundle_format as fmt
from adamoe_contract.backend import (
    InferenceResult,
    Observation,
    RtcOptions,
    check_observation,
    initial_noise,
    normalized_prefix,
)
from adamoe_contract.preprocess import image_to_model_input, normalize, pad_last_dim, state_prompt, unnormalize
from adamoe_contract.routing import RoutingAccumulator
from adamoe_contract.spec import BundleError, BundleSpec, TensorSpec, load_spec
from adamoe_ros.engine.binding import BoundStep, run_on_device
from adamoe_ros.engine.flow import euler_integrate, rtc_prefix_weights
from adamoe_ros.engine.providers import create_session, resolve_providers
from adamoe_ros.engine.tokenizer import InstructionTokenizer

_log = logging.getLogger('adamoe_ros.engine')
_ORT_DTYPES = {
    'tensor(float)': 'float32',
    'tensor(float16)': 'float16',
    'tensor(int64)': 'int64',
    'tensor(bool)': 'bool',
}


class PolicyEngine:
    """Loads, validates and runs a policy bundle: preprocessing, prefix graph, Euler loop, de-normalisation.

    Implements adamoe_contract.backend.PolicyBackend.
    """

    def __init__(
        self,
        spec: BundleSpec,
        prefix: ort.InferenceSession,
        denoise: ort.InferenceSession,
        tokenizer: InstructionTokenizer,
        rtc: RtcOptions,
    ) -> None:
        self.spec = spec
        self._prefix = prefix
        self._denoise = denoise
        self._tokenizer = tokenizer
        self.rtc = rtc
        self.providers = prefix.get_providers()
        self._state_graph = fmt.STATE_INPUT_GRAPH[spec.model_family]

    @classmethod
    def from_bundle(
        cls,
        path: str | Path,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 1,
        warmup: bool = True,
        verify_hash: bool = True,
        rtc: RtcOptions | None = None,
    ) -> PolicyEngine:
        """Validate the bundle folder and create its ONNX Runtime sessions (BundleError on any problem)."""
        folder = Path(path)
        spec = load_spec(folder)
        for name in (*spec.content_files, spec.tokenizer.file):
            if not (folder / name).is_file():
                raise BundleError(f'{folder / name}: missing from the bundle')
        if verify_hash:
            actual = fmt.content_hash(folder, spec.content_files)
            if actual != spec.bundle_id:
                raise BundleError(
                    f"{folder / fmt.METADATA_FILE}: bundle_id {spec.bundle_id[:12]}... does not match the files' "
                    f'content hash {actual[:12]}... over {", ".join(spec.content_files)} '
                    '(a file was modified after export)'
                )
        rtc = rtc or RtcOptions()
        chosen = resolve_providers(providers)
        strict = providers is not None
        prefix = create_session(folder / fmt.PREFIX_FILE, chosen, intra_op_threads, strict=strict)
        denoise = create_session(folder / fmt.DENOISE_FILE, chosen, intra_op_threads, strict=strict)
        _check_graph(folder / fmt.PREFIX_FILE, prefix, spec.graphs['prefix'], _expected_prefix(spec))
        _check_graph(folder / fmt.DENOISE_FILE, denoise, spec.graphs['denoise'], _expected_denoise(spec))
        _check_cache_handoff(folder, spec)
        engine = cls(spec, prefix, denoise, InstructionTokenizer(folder, spec.tokenizer), rtc)
        _log.info(
            'loaded bundle %s (%s, %s routing) on %s',
            folder,
            spec.bundle_id[:12],
            spec.routing.mode,
            engine.providers[0],
        )
        if warmup:
            engine.warmup()
        return engine

    def warmup(self) -> None:
        """Run one inference on a blank observation so the first real call is not slow."""
        images = {cam: np.zeros((*self.spec.image_size[cam], 3), dtype=np.uint8) for cam in self.spec.camera_names}
        state = np.zeros(self.spec.state_dim, dtype=np.float32)
        if self.spec.state_norm.mode == 'MEAN_STD':
            state = self.spec.state_norm.mean.copy()
        self.infer(Observation(images=images, state=state, instruction=''), noise_seed=0)

    def infer(
        self,
        observation: Observation,
        prefix_actions: np.ndarray | None = None,
        inference_delay: int = 0,
        noise_seed: int | None = None,
        noise: np.ndarray | None = None,
    ) -> InferenceResult:
        """Predict one action chunk (horizon, action_dim) in robot units; RTC-guided if prefix_actions given."""
        start = time.perf_counter()
        feeds = self.preprocess(observation)
        # PI0's state is a suffix token of every denoise step, not a prefix input.
        step_feeds = {fmt.STATE: feeds.pop(fmt.STATE)} if self._state_graph == 'denoise' else {}
        noise = initial_noise(self.spec, noise_seed, noise)
        target, mask = self._rtc_target(prefix_actions, inference_delay)
        t_pre = time.perf_counter()
        # The prefix outputs (pad mask, K/V cache) are the denoise inputs of the same names; they stay on the
        # provider's device and are bound once for all flow steps (binding.py).
        cache = run_on_device(self._prefix, feeds)
        t_prefix = time.perf_counter()
        denoise = BoundStep(self._denoise, cache | step_feeds)
        routing = RoutingAccumulator(self.spec.routing)
        dtype = np.float16 if self.spec.precision == 'fp16' else np.float32

        def velocity(x_t: np.ndarray, t: np.ndarray) -> np.ndarray:
            outputs = denoise({fmt.X_T: x_t.astype(dtype), fmt.TIME: t.astype(dtype)})
            if len(outputs) == 3:
                routing.add(outputs[1], outputs[2])
            return outputs[0].astype(np.float32)

        x_0 = euler_integrate(velocity, noise, self.spec.num_flow_steps, target, mask, self.rtc.max_guidance_weight)
        t_denoise = time.perf_counter()
        actions = unnormalize(x_0[0, :, : self.spec.action_dim], self.spec.action_norm).astype(np.float32)
        if not np.all(np.isfinite(actions)):
            raise FloatingPointError('policy produced non-finite actions; refusing to return them')
        end = time.perf_counter()
        timings = {
            'preprocess': t_pre - start,
            'prefix': t_prefix - t_pre,
            'denoise': t_denoise - t_prefix,
            'total': end - start,
        }
        return InferenceResult(actions=actions, timings=timings, routing=routing.result(), noise=noise)

    def preprocess(self, observation: Observation) -> dict[str, np.ndarray]:
        """Validate an observation and build the feeds it gives the graphs (ValueError names the bad field).

        The prefix graph's inputs, and `state` for the graph the model family feeds it to (none for PI05, whose
        prompt carries the discretised state instead).
        """
        spec = self.spec
        state = check_observation(observation, spec)
        feeds: dict[str, np.ndarray] = {}
        for cam in spec.camera_names:
            image = np.asarray(observation.images[cam])
            pixels = image_to_model_input(image, spec.image_size[cam], spec.image_preprocessing)
            feeds[fmt.image_input_name(cam)] = pixels.astype(self._float_dtype)
        norm_state = normalize(state, spec.state_norm)
        if self._state_graph is not None:
            feeds[fmt.STATE] = pad_last_dim(norm_state[None], spec.max_state_dim).astype(self._float_dtype)
        prompt = observation.instruction
        if spec.tokenizer.state_bins is not None:
            prompt = state_prompt(prompt, norm_state, spec.tokenizer.state_bins)
        feeds[fmt.LANG_TOKENS], feeds[fmt.LANG_MASK] = self._tokenizer(prompt)
        return feeds

    @property
    def _float_dtype(self) -> type:
        return np.float16 if self.spec.precision == 'fp16' else np.float32

    def _rtc_target(
        self, prefix_actions: np.ndarray | None, inference_delay: int
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        if prefix_actions is None:
            return None, None
        spec = self.spec
        prefix = normalized_prefix(prefix_actions, inference_delay, spec)
        target = np.zeros((1, spec.horizon, spec.max_action_dim), dtype=np.float32)
        target[0, : len(prefix), : spec.action_dim] = prefix
        # Like LeRobot: nothing to merge beyond the leftover actions, so the horizon shrinks to them.
        execution_horizon = min(self.rtc.execution_horizon, len(prefix))
        mask = rtc_prefix_weights(inference_delay, execution_horizon, spec.horizon, self.rtc.schedule)
        return target, mask


def _expected_prefix(spec: BundleSpec) -> dict[str, tuple[int, ...]]:
    shapes = {
        fmt.image_input_name(cam): (1, 3, spec.image_preprocessing.model_height, spec.image_preprocessing.model_width)
        for cam in spec.camera_names
    }
    shapes[fmt.LANG_TOKENS] = (1, spec.tokenizer.max_length)
    shapes[fmt.LANG_MASK] = (1, spec.tokenizer.max_length)
    return shapes | _state_input(spec, 'prefix')


def _expected_denoise(spec: BundleSpec) -> dict[str, tuple[int, ...]]:
    return {fmt.X_T: (1, spec.horizon, spec.max_action_dim), fmt.TIME: (1,)} | _state_input(spec, 'denoise')


def _state_input(spec: BundleSpec, graph: str) -> dict[str, tuple[int, ...]]:
    """Return the padded state input if the bundle's model family feeds the state to `graph`."""
    return {fmt.STATE: (1, spec.max_state_dim)} if fmt.STATE_INPUT_GRAPH[spec.model_family] == graph else {}


def _check_graph(
    file: Path,
    session: ort.InferenceSession,
    declared: dict[str, dict[str, TensorSpec]],
    expected_inputs: dict[str, tuple[int, ...]],
) -> None:
    """Graph I/O must equal bundle.json's declaration, which must agree with the spec's dimensions."""
    for kind, nodes in (('inputs', session.get_inputs()), ('outputs', session.get_outputs())):
        actual = {n.name: (tuple(n.shape), _ORT_DTYPES.get(n.type, n.type)) for n in nodes}
        wanted = {name: (t.shape, t.dtype) for name, t in declared[kind].items()}
        if set(actual) != set(wanted):
            raise BundleError(
                f'{file}: graph {kind} {sorted(actual)} differ from bundle.json '
                f'graphs.{file.stem}.{kind} {sorted(wanted)}'
            )
        for name, (shape, dtype) in actual.items():
            if (shape, dtype) != wanted[name]:
                raise BundleError(
                    f"{file}: {kind[:-1]} '{name}' is {dtype}{list(shape)} but bundle.json declares "
                    f'{wanted[name][1]}{list(wanted[name][0])}'
                )
    if fmt.STATE in declared['inputs'] and fmt.STATE not in expected_inputs:
        raise BundleError(f"{file}: input '{fmt.STATE}' does not belong in this graph for the bundle's model_family")
    for name, shape in expected_inputs.items():
        if name not in declared['inputs']:
            raise BundleError(f"{file}: required input '{name}' is missing")
        if declared['inputs'][name].shape != shape:
            raise BundleError(
                f"{file}: input '{name}' has shape {list(declared['inputs'][name].shape)} but the bundle's "
                f'dimensions need {list(shape)}'
            )


def _check_cache_handoff(folder: Path, spec: BundleSpec) -> None:
    """Every prefix output (pad mask, K/V cache) must be the denoise input of the same name: infer binds by name."""
    unfed = [name for name in spec.graphs['prefix']['outputs'] if name not in spec.graphs['denoise']['inputs']]
    if unfed:
        raise BundleError(
            f'{folder / fmt.PREFIX_FILE}: outputs {unfed} are not inputs of {fmt.DENOISE_FILE}; the prefix graph '
            'must hand its pad mask and K/V cache to the denoise inputs of the same names'
        )
