"""ONNX Runtime IO binding: the prefix graph's K/V cache stays on the session's device for every denoise step.

Plain `session.run` returns outputs as host arrays and takes feeds from the host, so a GPU provider would copy the
whole K/V cache device -> host after the prefix and host -> device again at each of the num_flow_steps denoise
steps (at real size that is tens of MB per step). With binding, the prefix outputs stay OrtValues on the device
and are bound once as denoise inputs; per step only x_t and t go in and the velocity (+ routing) come back.
On the CPU provider the device is host memory and the same code passes the buffers without copies.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnxruntime as ort

from adamoe_ros.engine.providers import CUDA_PROVIDERS


def provider_device(provider: str, options: Mapping[str, str]) -> tuple[str, int]:
    """(device type, device id) where a provider keeps its tensors: ('cuda', device_id), else host memory."""
    if provider in CUDA_PROVIDERS:
        return 'cuda', int(options.get('device_id', 0))
    return 'cpu', 0


def session_device(session: ort.InferenceSession) -> tuple[str, int]:
    """(device type, device id) of the session's first (active) execution provider."""
    provider = session.get_providers()[0]
    return provider_device(provider, session.get_provider_options().get(provider, {}))


def run_on_device(session: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> dict[str, ort.OrtValue]:
    """Run a graph on host inputs; return its outputs by name, left on the session's device."""
    binding = session.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    device, device_id = session_device(session)
    names = [output.name for output in session.get_outputs()]
    for name in names:
        binding.bind_output(name, device, device_id)
    session.run_with_iobinding(binding)
    return dict(zip(names, binding.get_outputs(), strict=True))


class BoundStep:
    """A graph run repeatedly: fixed inputs bound once (device OrtValues or host arrays), the rest per call.

    Each call returns every output as a host array, in the session's output order.
    """

    def __init__(self, session: ort.InferenceSession, fixed: Mapping[str, ort.OrtValue | np.ndarray]) -> None:
        self._session = session
        self._binding = session.io_binding()
        for name, value in fixed.items():
            if isinstance(value, ort.OrtValue):
                self._binding.bind_ortvalue_input(name, value)
            else:
                self._binding.bind_cpu_input(name, value)
        for output in session.get_outputs():
            self._binding.bind_output(output.name, 'cpu')

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Bind the per-call host inputs, run, and copy the outputs to the host."""
        for name, value in feeds.items():
            self._binding.bind_cpu_input(name, value)
        self._session.run_with_iobinding(self._binding)
        return self._binding.copy_outputs_to_cpu()
