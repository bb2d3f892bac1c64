"""AdaMoE policy plugin for LeRobot (`--policy.type=adamoe`, `adamoe_pi0`, `adamoe_pi05`).

Importing the package registers the config types, the optimizer ("adamoe_adamw") and the scheduler
("adamoe_multigroup_cosine") with LeRobot; LeRobot's register_third_party_plugins() does that import.
"""

from lerobot_policy_adamoe.configuration_adamoe import AdaMoEConfig
from lerobot_policy_adamoe.configuration_adamoe_pi import AdaMoEPI0Config, AdaMoEPI05Config

__all__ = ['AdaMoEConfig', 'AdaMoEPI0Config', 'AdaMoEPI05Config']
