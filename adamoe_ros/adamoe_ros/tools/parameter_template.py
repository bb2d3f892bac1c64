"""Print config/generic_template.yaml: every policy node parameter at its default, from the parameter table.

python -m adamoe_ros.tools.parameter_template > adamoe_ros/config/generic_template.yaml
"""

from adamoe_ros.parameters import parameter_file
from adamoe_ros.policy.params import PolicyParams

HEADER = """\
Template parameters of policy_node, generated from adamoe_ros/policy/params.py (do not edit: run
python -m adamoe_ros.tools.parameter_template > adamoe_ros/config/generic_template.yaml). Copy it, set
robot_profile and bundle_path (both required), keep the lines you change and pass it with --params-file
(or robot_config:=... to policy.launch.py).

The robot's facts (joint names in command order, position limits, velocity limits, camera topics, extra-state
topic, default instruction) live in one robot profile YAML, not here, as ros2_control takes limits from one robot
description. The node takes all but the instruction from it: a bundle may be trained on other instructions than the
profile's, so the node waits for one on its topic unless default_instruction below is set. Shipped profiles:
adamoe_contract/adamoe_contract/robots/{so101,aloha}.yaml. To add a robot:
  1. copy so101.yaml to my_robot.yaml and set `name`, one `joints` entry per joint in the order your
     forward_position_controller expects (name, lower and upper limit from your URDF, max_velocity in rad/s),
     `cameras` (name as in the bundle, topic, raw or compressed), `extra_state` (if any) and
     `default_instruction`;
  2. set robot_profile below to its path (or add it to adamoe_contract/adamoe_contract/robots/ and rebuild
     to use it by name);
  3. check it with: python -c "from adamoe_contract.robots import load_robot_profile as l; print(l('PATH'))"
The bundle's joint names must be the profile's, in the same order, or configure fails.
"""


def policy_parameter_template() -> str:
    """Return the template's text."""
    return parameter_file(PolicyParams, HEADER)


if __name__ == '__main__':
    print(policy_parameter_template(), end='')
