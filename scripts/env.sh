# Source this file (like a ROS setup.bash):  source scripts/env.sh
# It activates the project venv, which holds the ROS 2 Kilted wheels and our message package.
_ADAMOE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_ADAMOE_VENV=${ADAMOE_VENV:-$_ADAMOE_ROOT/.venv}
if [ ! -x "$_ADAMOE_VENV/bin/python" ]; then
  echo "adamoe_ros: no venv at $_ADAMOE_VENV; run scripts/setup.sh first" >&2
  return 1 2>/dev/null || exit 1
fi
export VIRTUAL_ENV=$_ADAMOE_VENV
case ":$PATH:" in *":$_ADAMOE_VENV/bin:"*) ;; *) export PATH=$_ADAMOE_VENV/bin:$PATH ;; esac
# The ament index (message type support lookup, share/ files) lives in the venv prefix.
case ":${AMENT_PREFIX_PATH:-}:" in *":$_ADAMOE_VENV:"*) ;; *) export AMENT_PREFIX_PATH=$_ADAMOE_VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH} ;; esac
# DDS discovery on loopback only; pick your own domain with ROS_DOMAIN_ID.
export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
# No Hugging Face hub here: everything is local.
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export HF_LEROBOT_HOME=${HF_LEROBOT_HOME:-$_ADAMOE_ROOT/data}
# Headless MuJoCo rendering.
export MUJOCO_GL=${MUJOCO_GL:-egl} PYOPENGL_PLATFORM=${PYOPENGL_PLATFORM:-egl}
unset _ADAMOE_ROOT _ADAMOE_VENV
