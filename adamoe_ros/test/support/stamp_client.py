"""Child process of the policy stamp tests: a well-behaved sensor set and a hostile publisher on the same topics.

The well-behaved publisher sends two cameras (15 Hz), joint states and the extra state (50 Hz), all stamped with
the node clock (ROS time), and the latched instruction. The hostile one is a second publisher per topic, driven by
commands on stdin; each command is answered on stdout with `ok <command> <ROS time ns>` once it took effect:
  future STREAM SECONDS COUNT  COUNT messages on STREAM (a camera name or joint_states), 0.1 s apart, all with
                               the stamp SECONDS ahead of now (one bad sensor message, repeated for delivery)
  block SECONDS PERIOD         every PERIOD s, replay the joint state of this moment stamped SECONDS ahead
  move P1 .. P6                the well-behaved joint states report these positions from now on
  gap SECONDS                  the well-behaved cameras send nothing for SECONDS
  quit
"""

import queue
import sys
import threading
import time

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, SENSOR_QOS, ns_to_stamp
from adamoe_ros.ros_image import numpy_to_image
from adamoe_ros.tools.fake_inputs import SO101

CAMERAS = ('front', 'wrist')
CAMERA_PERIOD = 1.0 / 15.0
STATE_PERIOD = 1.0 / 50.0


class StampClient(Node):
    """Both publishers of every input topic, on one node."""

    def __init__(self, positions: np.ndarray) -> None:
        super().__init__('stamp_client')
        self.positions = positions
        self.frame = numpy_to_image(np.full((48, 64, 3), 120, np.uint8), 'rgb8')
        topics = {c: SO101.camera_topic(c) for c in CAMERAS}
        self.cameras = {c: self.create_publisher(Image, t, SENSOR_QOS) for c, t in topics.items()}
        self.hostile_cameras = {c: self.create_publisher(Image, t, SENSOR_QOS) for c, t in topics.items()}
        self.joints = self.create_publisher(JointState, 'joint_states', SENSOR_QOS)
        self.hostile_joints = self.create_publisher(JointState, 'joint_states', SENSOR_QOS)
        self.extra = self.create_publisher(Float64MultiArray, 'sim/cube_position', SENSOR_QOS)
        self.create_publisher(String, 'instruction', LATCHED_QOS).publish(String(data='pick up the cube'))

    def now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def joint_state(self, positions: np.ndarray, stamp_ns: int) -> JointState:
        msg = JointState(name=list(SO101.joint_names), position=positions.tolist())
        msg.header.stamp = ns_to_stamp(stamp_ns)
        return msg

    def publish_frames(self) -> None:
        self.frame.header.stamp = ns_to_stamp(self.now_ns())
        for publisher in self.cameras.values():
            publisher.publish(self.frame)

    def publish_state(self) -> None:
        self.joints.publish(self.joint_state(self.positions, self.now_ns()))
        self.extra.publish(Float64MultiArray(data=[0.2, 0.0, 0.02]))

    def publish_future(self, stream: str, stamp_ns: int) -> None:
        if stream == 'joint_states':
            self.hostile_joints.publish(self.joint_state(self.positions, stamp_ns))
        else:
            frame = numpy_to_image(np.zeros((48, 64, 3), np.uint8), 'rgb8')
            frame.header.stamp = ns_to_stamp(stamp_ns)
            self.hostile_cameras[stream].publish(frame)


def read_commands(lines: queue.Queue) -> None:
    for line in sys.stdin:
        lines.put(line.split())
    lines.put(['quit'])


def main() -> None:
    rclpy.init()
    client = StampClient(np.array([float(v) for v in sys.argv[1:7]]))
    commands: queue.Queue = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    next_frame = next_state = time.monotonic()
    camera_off_until = 0.0
    replay: tuple[np.ndarray, int, float] | None = None  # positions, lead (ns), period (s)
    future: list[tuple[float, str, int]] = []  # (when, stream, stamp) of hostile messages to send
    next_replay = 0.0
    print('ready', flush=True)
    try:
        while True:
            now = time.monotonic()
            while not commands.empty():
                words = commands.get()
                kind = words[0]
                if kind == 'quit':
                    return
                if kind == 'future':
                    stamp = client.now_ns() + int(float(words[2]) * NS_PER_S)
                    future += [(now + 0.1 * i, words[1], stamp) for i in range(int(words[3]))]
                elif kind == 'block':
                    replay = (client.positions.copy(), int(float(words[1]) * NS_PER_S), float(words[2]))
                    next_replay = now
                elif kind == 'move':
                    client.positions = np.array([float(v) for v in words[1:7]])
                elif kind == 'gap':
                    camera_off_until = now + float(words[1])
                print(f'ok {kind} {client.now_ns()}', flush=True)
            if now >= next_frame:
                if now >= camera_off_until:
                    client.publish_frames()
                next_frame += CAMERA_PERIOD
            if now >= next_state:
                client.publish_state()
                next_state += STATE_PERIOD
            while future and now >= future[0][0]:
                client.publish_future(*future.pop(0)[1:])
            if replay is not None and now >= next_replay:
                positions, lead_ns, period = replay
                client.hostile_joints.publish(client.joint_state(positions, client.now_ns() + lead_ns))
                next_replay += period
            time.sleep(0.001)
    finally:
        client.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
