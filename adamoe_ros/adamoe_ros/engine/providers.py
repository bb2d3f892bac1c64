"""ONNX Runtime session creation with an explicit, verified execution-provider choice."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from adamoe_contract.spec import BundleError

# Providers that run on an NVIDIA GPU (tensors in CUDA memory); onnxruntime-gpu has them, onnxruntime does not.
CUDA_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')
PREFERRED_PROVIDERS = (*CUDA_PROVIDERS, 'CPUExecutionProvider')
_log = logging.getLogger('adamoe_ros.engine')


class ProviderError(RuntimeError):
    """A requested ONNX Runtime execution provider is unavailable or was silently replaced."""


def resolve_providers(requested: Sequence[str] | None) -> list[str]:
    """TensorRT -> CUDA -> CPU among the available ones, or exactly the requested list (all must exist)."""
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        hint = ''
        if set(missing) & set(CUDA_PROVIDERS):
            hint = '; the CUDA and TensorRT providers come with onnxruntime-gpu (installed in place of onnxruntime)'
        raise ProviderError(f'execution providers {missing} are not available in this onnxruntime ({available}){hint}')
    if not requested:
        raise ProviderError('providers list is empty')
    return list(requested)


def create_session(
    file: Path, providers: list[str], intra_op_threads: int, inter_op_threads: int = 1, strict: bool = True
) -> ort.InferenceSession:
    """Load one graph; unreadable files raise BundleError, a provider fallback raises ProviderError if strict."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(file), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises several unrelated classes for unreadable models
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problem = f'ONNX Runtime cannot load it (corrupted or not an ONNX model): {first_line}'
        raise BundleError(f'{file}: {problem}') from exc
    active = session.get_providers()
    # ONNX Runtime silently falls back to CPU when a GPU provider fails to initialise: refuse that.
    if active[0] != providers[0]:
        message = f'{file.name}: requested {providers[0]} but ONNX Runtime runs {active[0]} (fallback)'
        if strict:
            raise ProviderError(message)
        _log.warning(message)
    _log.info('%s runs on %s', file.name, active[0])
    return session
