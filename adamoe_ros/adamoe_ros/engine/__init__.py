"""Policy bundle loading/validation and ONNX Runtime inference (no torch)."""

from adamoe_ros.engine.engine import InferenceResult, Observation, PolicyEngine, RtcOptions
from adamoe_ros.engine.errors import BundleError, ProviderError
from adamoe_ros.engine.routing import RoutingStats
from adamoe_ros.engine.spec import BundleSpec, RoutingSpec

__all__ = [
    "BundleError",
    "BundleSpec",
    "InferenceResult",
    "Observation",
    "PolicyEngine",
    "ProviderError",
    "RoutingSpec",
    "RoutingStats",
    "RtcOptions",
]
