"""Which bundle model family (`adamoe_contract.bundle_format.MODEL_FAMILIES`) a LeRobot policy's flow model is.

The family decides what the exporter traces and writes: SmolVLA's or PI's graphs, image padding, tokenizer and
prompt. Dense LeRobot policies and their AdaMoE versions share their base's flow model class, hence its family.
"""

from __future__ import annotations

from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from lerobot.policies.pi05.modeling_pi05 import PI05Pytorch
from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching
from torch import nn

from adamoe_contract import bundle_format as fmt

_FLOW_FAMILIES = ((VLAFlowMatching, fmt.SMOLVLA), (PI0Pytorch, fmt.PI0), (PI05Pytorch, fmt.PI05))


def model_family(flow: nn.Module) -> str:
    """Return the bundle model family of a policy's flow model (`policy.model`)."""
    for flow_class, family in _FLOW_FAMILIES:
        if isinstance(flow, flow_class):
            return family
    known = ', '.join(cls.__name__ for cls, _ in _FLOW_FAMILIES)
    raise ValueError(f'{type(flow).__name__}: no bundle model family exports it (flow models: {known})')


def expert_layers(flow: nn.Module) -> nn.ModuleList:
    """Return the action expert's decoder layers: SmolVLA's `lm_expert`, PI0/PI05's `gemma_expert`."""
    if model_family(flow) == fmt.SMOLVLA:
        return flow.vlm_with_expert.lm_expert.layers
    return flow.paligemma_with_expert.gemma_expert.model.layers
