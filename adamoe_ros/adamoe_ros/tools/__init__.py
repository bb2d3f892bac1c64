"""Test, benchmark and bring-up tools: synthetic input publishers, the soak test, the parameter template.

No runtime node imports them.

python -m adamoe_ros.tools.fake_inputs --duration 10       # policy node inputs (cameras, joints, instruction)
python -m adamoe_ros.tools.synthetic_source --rate 30      # recorder inputs whose values encode their stamps
python -m adamoe_ros.tools.soak --minutes 30               # the two-process sim stack, watched for leaks (soak.sh)
python -m adamoe_ros.tools.parameter_template             # config/generic_template.yaml from the policy parameters
"""
