"""ONNX Runtime inference of policy bundles (no torch).

The bundle format, its validation and the types the engine takes and returns belong to adamoe_contract; they are
re-exported here because they are the engine's API.
"""

from adamoe_contract.backend import InferenceResult, Observation, PolicyBackend, RtcOptions
from adamoe_contract.routing import RoutingStats
from adamoe_contract.spec import BundleError, BundleSpec, RoutingSpec
from adamoe_ros.engine.engine import PolicyEngine
from adamoe_ros.engine.process import EngineProcess, EngineProcessError
from adamoe_ros.engine.providers import ProviderError

__all__ = [
    'BundleError',
    'BundleSpec',
    'EngineProcess',
    'EngineProcessError',
    'InferenceResult',
    'Observation',
    'PolicyBackend',
    'PolicyEngine',
    'ProviderError',
    'RoutingSpec',
    'RoutingStats',
    'RtcOptions',
]
