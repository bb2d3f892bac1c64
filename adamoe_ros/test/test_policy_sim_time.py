"""On a simulated /clock (use_sim_time): ages follow the node clock, a stale camera stops commands within one
control period, and commands resume with a ramp from the measured position."""

import numpy as np
from test_policy_support import MAX_VELOCITY, SIM_STEP_NS, SimRun, control_period_s, parameter_ns

from adamoe_ros.ros_env import NS_PER_S

MEASURED = np.array([0.1, 0.2, -0.3, 0.4, 0.0, 0.5])


def test_sim_clock_staleness_and_resume():
    gap = (3 * NS_PER_S, 4 * NS_PER_S)  # camera frames every 5 steps, none strictly between these
    run = SimRun()
    try:
        run.drive(NS_PER_S, 5 * NS_PER_S, lambda t: (t % (5 * SIM_STEP_NS) == 0 and not gap[0] < t < gap[1], MEASURED))
        stamps, values = run.sent()  # stamped on the node clock when sent
        period_s, max_age_ns = control_period_s(run.node), parameter_ns(run.node, 'max_image_age')
        stale_events = run.node.status_message().stale_events
    finally:
        run.close()
    period_ns = round(period_s * NS_PER_S)
    stale_from = gap[0] + max_age_ns  # the last frame before the gap is fresh up to max_image_age old
    before = stamps <= stale_from
    # Ages are in simulated time: the node kept commanding through the whole 2 s of simulated
    # time before the gap however slowly it ran in wall time.
    assert before.sum() > 20 and stamps.min() < 2 * NS_PER_S
    # Commands stop within one control period of the camera going stale, and not before it went stale.
    assert stale_from - period_ns <= stamps[before].max()
    assert np.all(stamps[~before] >= gap[1]), 'commands were sent while the camera was stale'
    first_resumed = values[np.argmax(~before)]
    assert (~before).any() and np.all(np.abs(first_resumed - MEASURED) <= MAX_VELOCITY * period_s + 1e-9)
    assert stale_events >= 1
