#!/usr/bin/env bash
# Soak the sim-in-the-loop stack (sim bridge + policy node, separate processes) for 30 minutes at real-time
# factor 1 and print a table and a verdict. Options go to the module: scripts/soak.sh --help
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
source scripts/env.sh
exec python -m adamoe_ros.tools.soak "$@"
