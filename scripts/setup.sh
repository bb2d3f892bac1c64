#!/usr/bin/env bash
# One set-up command: apt packages, the project venv (Python 3.12), ROS 2 Kilted wheels, LeRobot,
# ONNX Runtime, MuJoCo, the message package build and editable installs of our three Python projects.
# Idempotent: every step is skipped when its inputs have not changed since the last successful run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ADAMOE_VENV:-$ROOT/.venv}
STAMPS=$VENV/.adamoe-stamps
START=$(date +%s)
log() { printf '[setup %3ds] %s\n' $(($(date +%s) - START)) "$*"; }

# Run a step only when the hash of its inputs changed.
stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" >"$STAMPS/$1"; }
hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }

# 1. System packages: compilers for the message build, FFmpeg shared libraries for torchcodec,
#    Mesa EGL for headless MuJoCo rendering.
APT_PACKAGES=(cmake g++ make libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6
  libswresample4 libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The venv on Python 3.12 (lerobot 0.6.1 requires it).
if [ ! -x "$VENV/bin/python" ]; then
  PY=${ADAMOE_PYTHON:-}
  if [ -z "$PY" ]; then
    for c in "$(pyenv root 2>/dev/null)/versions/3.12.1/bin/python3.12" python3.12; do
      if command -v "$c" >/dev/null 2>&1; then PY=$c; break; fi
    done
  fi
  [ -n "$PY" ] || { echo "setup: Python 3.12 not found (set ADAMOE_PYTHON)" >&2; exit 1; }
  log "venv: creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
touch "$VENV/COLCON_IGNORE"  # colcon must not crawl 6 GB of site-packages looking for packages

# 3. Python packages, pinned by requirements.lock (resolved once, committed).
REQ_HASH=$(hash_of "$ROOT/requirements.txt" "$ROOT/requirements.lock")
if ! stamp_ok pip "$REQ_HASH"; then
  # A CUDA build of torch is the only one on PyPI: a new venv takes 6.4 GB. Say so before pip fails half-way.
  FREE_GB=$(df -P -BG "$VENV" | awk 'NR == 2 {print int($4)}')
  if [ ! -f "$STAMPS/pip" ] && [ "$FREE_GB" -lt 7 ]; then
    echo "setup: a new venv needs about 7 GB free at $VENV; $FREE_GB GB free" >&2
    exit 1
  fi
  log "pip: installing requirements (first time: about 4 minutes, 6.4 GB)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" \
    -c "$ROOT/requirements.lock" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  stamp_set pip "$REQ_HASH"
fi

# 4. The ROS wheels' CMake exports name the manylinux build interpreter: point them at this venv.
PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
sed -i -E -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#$PYINC#g" \
  -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/_core/include#$NPINC#g" \
  "$VENV"/share/*/cmake/export_*__rosidl_generator_pyExport.cmake

# 5. Build and install the message package into the venv prefix (no env vars needed at run time).
export AMENT_PREFIX_PATH=$VENV PATH=$VENV/bin:$PATH
MSG_HASH=$(hash_of "$ROOT"/adamoe_ros_interfaces/CMakeLists.txt "$ROOT"/adamoe_ros_interfaces/package.xml \
  "$ROOT"/adamoe_ros_interfaces/msg/* "$ROOT"/adamoe_ros_interfaces/srv/*)
if ! stamp_ok msgs "$MSG_HASH"; then
  log "msgs: building adamoe_ros_interfaces (about 30 s)"
  B=$(mktemp -d)
  cmake -S "$ROOT/adamoe_ros_interfaces" -B "$B" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF >"$B/configure.log"
  cmake --build "$B" -j"$(nproc)" >"$B/build.log"
  cmake --install "$B" >"$B/install.log"
  rm -rf "$B"
  stamp_set msgs "$MSG_HASH"
fi

# 6. Editable installs of our Python projects (entry points change only with these files).
PKG_HASH=$(hash_of "$ROOT/adamoe_contract/setup.py" "$ROOT/adamoe_ros/setup.py" "$ROOT/training/pyproject.toml")
if ! stamp_ok editable "$PKG_HASH"; then
  log "pip: editable installs of adamoe_contract, adamoe_ros and training/"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    -e "$ROOT/adamoe_contract" -e "$ROOT/adamoe_ros" -e "$ROOT/training"
  stamp_set editable "$PKG_HASH"
fi

"$VENV/bin/python" - <<'EOF'
import adamoe_ros_interfaces.msg, rclpy, onnxruntime, mujoco, lerobot, adamoe_contract, adamoe_ros, lerobot_policy_adamoe  # noqa
EOF
log "done: source scripts/env.sh to use the environment"
