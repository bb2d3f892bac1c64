#!/usr/bin/env bash
# The whole test suite: contract (adamoe_contract/test), runtime (adamoe_ros/test) and training (training/tests).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# One worker by default: the ROS tests measure staleness and alignment in wall-clock time, and a second
# worker training a model on the other core makes them flaky on a 2-core machine.
python -m pytest -n "${ADAMOE_TEST_WORKERS:-1}" "$@"
rc=$?
# pytest exits 5 when nothing was collected: that is a failure of the suite, not a pass.
[ $rc -eq 5 ] && echo "run_tests: no tests collected" >&2
exit $rc
