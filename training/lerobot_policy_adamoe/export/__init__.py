"""Export of trained AdaMoE/SmolVLA policies into runtime bundles (prefix + denoise ONNX graphs)."""

from lerobot_policy_adamoe.export.bundle_writer import write_bundle
from lerobot_policy_adamoe.export.metadata import DatasetNames
from lerobot_policy_adamoe.export.untrained import UntrainedSpec, make_untrained_bundle

__all__ = ['DatasetNames', 'UntrainedSpec', 'make_untrained_bundle', 'write_bundle']
