"""Test-wide environment: each pytest-xdist worker gets its own ROS domain, discovery stays on loopback."""

import os

_worker = os.environ.get('PYTEST_XDIST_WORKER', 'gw0')
_index = int(_worker[2:]) if _worker.startswith('gw') and _worker[2:].isdigit() else 0
# Domains 40.. keep clear of 0 (the default a developer's other ROS processes use); two concurrent test runs on
# one machine pick different bases with ADAMOE_TEST_DOMAIN_BASE.
os.environ['ROS_DOMAIN_ID'] = str(int(os.environ.get('ADAMOE_TEST_DOMAIN_BASE', '40')) + _index)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('HF_DATASETS_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
