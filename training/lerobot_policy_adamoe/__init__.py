"""AdaMoE policy plugin for LeRobot (`--policy.type=adamoe`).

Importing the package registers the config type, the optimizer ("adamoe_adamw") and the scheduler
("adamoe_multigroup_cosine") with LeRobot; LeRobot's register_third_party_plugins() does that import.
"""

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig

__all__ = ['AdaMoEConfig']
