"""Synthetic policy inputs (cameras, joint states, instruction, extra state) for tests, benchmarks and bring-up.

Run as `python -m adamoe_ros.tools.fake_inputs --duration 10`; `--fuzz-rate 500` also sends 500 malformed or
random messages a second on the input topics. SIGUSR1 stops the cameras, SIGUSR2 starts them again (a camera
outage when a test needs one). Camera count and size: `--cameras front wrist top --width 640 --height 480` (raw
images, on the SO-101 profile's topic for a camera it lists, else the conventional cameras/<name>/image_raw).
"""

import argparse
import signal
import time

import numpy as np
import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray, String

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.ros_env import LATCHED_QOS, SENSOR_QOS
from adamoe_ros.ros_image import numpy_to_image

# The inputs of an SO-101 policy (the demo bundle's robot).
SO101 = load_robot_profile('so101')
CUBE_POSITION = [0.2, 0.0, 0.02]  # extra state: a cube on the table in front of the arm (m)


class SyntheticInputs(Node):
    """Publishes plausible inputs at fixed rates, and malformed ones on request."""

    def __init__(self, args: argparse.Namespace, **kwargs) -> None:
        """Create publishers for every input topic the policy node reads."""
        super().__init__('synthetic_inputs', **kwargs)
        self.args = args
        self.rng = np.random.default_rng(args.seed)
        self.cameras = {c: self.create_publisher(Image, SO101.camera_topic(c, 'raw'), SENSOR_QOS) for c in args.cameras}
        self.joints_pub = self.create_publisher(JointState, 'joint_states', SENSOR_QOS)
        self.instruction_pub = self.create_publisher(String, 'instruction', LATCHED_QOS)
        self.extra_pub = self.create_publisher(Float64MultiArray, SO101.extra_state_topic, SENSOR_QOS)
        self.positions = np.array(args.positions, dtype=np.float64)
        self.frame = self.rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
        # One message for every camera and frame, as a driver reuses its buffer: only the stamp changes.
        self.frame_msg = numpy_to_image(self.frame if args.encoding == 'rgb8' else self.frame[..., ::-1], args.encoding)
        self.sent = {'frames': 0, 'joint_states': 0, 'malformed': 0}
        # Frames sent per camera, readable by another process while this one runs (benchmarks).
        self.sent_counts = (
            np.memmap(args.sent_counts, np.int64, 'w+', shape=(len(args.cameras),)) if args.sent_counts else None
        )

    def publish_instruction(self) -> None:
        """Publish the (latched) task instruction."""
        self.instruction_pub.publish(String(data=self.args.instruction))

    def publish_frames(self) -> None:
        """Publish one frame per camera, stamped now."""
        self.frame_msg.header.stamp = self.get_clock().now().to_msg()
        for index, publisher in enumerate(self.cameras.values()):
            publisher.publish(self.frame_msg)
            if self.sent_counts is not None:
                self.sent_counts[index] += 1
        self.sent['frames'] += 1

    def publish_state(self) -> None:
        """Publish joint states (named, shuffled order) and the extra state."""
        order = self.rng.permutation(len(SO101.joint_names))
        msg = JointState(name=[SO101.joint_names[i] for i in order], position=self.positions[order].tolist())
        msg.header.stamp = self.get_clock().now().to_msg()
        self.joints_pub.publish(msg)
        self.extra_pub.publish(Float64MultiArray(data=CUBE_POSITION))
        self.sent['joint_states'] += 1

    def publish_malformed(self) -> None:
        """Publish one malformed or random message on a random input topic."""
        kind = int(self.rng.integers(0, 5))
        if kind == 0:
            msg = random_image(self.rng)
            msg.header.stamp = self.get_clock().now().to_msg()  # a good stamp: the content is what fails
            self.cameras[self.args.cameras[0]].publish(msg)
        elif kind == 1:
            self.joints_pub.publish(random_joint_state(self.rng))
        elif kind == 2:
            self.instruction_pub.publish(String(data=random_instruction(self.rng)))
            # The latched topic keeps only the newest: restore the valid task for late joiners.
            self.publish_instruction()
        elif kind == 3:
            values = self.rng.normal(size=int(self.rng.choice([0, 1, 2, 4, 7])))
            if values.size and self.rng.random() < 0.5:
                values[0] = self.rng.choice([np.nan, np.inf, -np.inf])
            self.extra_pub.publish(Float64MultiArray(data=values.tolist()))
        else:
            # A camera frame stamped long ago (1 s after the epoch): older than any maximum age.
            msg = numpy_to_image(self.frame, 'rgb8')
            msg.header.stamp.sec = 1
            self.cameras[self.args.cameras[-1]].publish(msg)
        self.sent['malformed'] += 1


def random_image(rng: np.random.Generator) -> Image | CompressedImage:
    """Return an Image with a wrong encoding, size, step or payload (never a valid colour image)."""
    msg = Image()
    msg.height, msg.width = int(rng.integers(0, 40)), int(rng.integers(0, 40))
    msg.encoding = str(rng.choice(['rgb8', 'bgr8', 'mono16', '32FC1', 'yuyv', '', 'rgb8\x00']))
    msg.step = int(rng.integers(0, 200))
    size = int(rng.integers(0, 600))
    msg.data = rng.integers(0, 255, size, dtype=np.uint8).tobytes()
    if (
        msg.encoding in ('rgb8', 'bgr8')
        and msg.height
        and msg.width
        and msg.step >= 3 * msg.width
        and len(msg.data) == msg.step * msg.height
    ):
        msg.data = msg.data[:-1]  # keep it malformed
    if msg.encoding in ('mono16', '32FC1') and rng.random() < 0.3:
        msg.height = msg.width = 70000  # oversized claims
    return msg


def random_joint_state(rng: np.random.Generator) -> JointState:
    """Return a JointState with missing, unknown or duplicate names, or mismatched arrays."""
    names = list(rng.choice([*SO101.joint_names, 'elbow', 'x', ''], size=int(rng.integers(0, 9))))
    if set(SO101.joint_names) <= set(names) and len(names) == len(set(names)):
        names.append('unknown_joint')
    n_pos = len(names) + int(rng.choice([-1, 0, 1]))
    positions = rng.normal(scale=100.0, size=max(n_pos, 0))
    if positions.size and rng.random() < 0.3:
        positions[0] = np.nan
    msg = JointState(name=[str(n) for n in names], position=positions.tolist())
    if rng.random() < 0.3:
        msg.velocity = [0.0] * int(rng.integers(1, 3))
    return msg


def random_instruction(rng: np.random.Generator) -> str:
    """Return an empty, oversized or control-character instruction."""
    choice = int(rng.integers(0, 3))
    if choice == 0:
        return ' ' * int(rng.integers(0, 4))
    if choice == 1:
        return 'x' * 5000
    return 'pick\x07 up\x00'


def main(argv: list[str] | None = None) -> None:
    """Publish synthetic inputs for --duration seconds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--duration', type=float, default=10.0)
    parser.add_argument('--camera-rate', type=float, default=15.0)
    parser.add_argument('--state-rate', type=float, default=50.0)
    parser.add_argument('--cameras', nargs='+', default=list(SO101.camera_names))
    parser.add_argument('--width', type=int, default=64)
    parser.add_argument('--height', type=int, default=48)
    parser.add_argument('--encoding', choices=('rgb8', 'bgr8'), default='rgb8', help='camera image encoding')
    parser.add_argument('--sent-counts', default='', help='file to keep the frames sent per camera in (int64 each)')
    parser.add_argument(
        '--positions',
        type=float,
        nargs=len(SO101.joint_names),
        default=[0.0] * len(SO101.joint_names),
        help='measured joint positions (rad, profile joint order)',
    )
    parser.add_argument('--instruction', default='pick up the cube')
    parser.add_argument('--fuzz-rate', type=float, default=0.0, help='malformed messages per second (from 0.5 s)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    cameras_on = True

    def switch_cameras(signum: int, frame: object) -> None:
        nonlocal cameras_on
        cameras_on = signum == signal.SIGUSR2

    signal.signal(signal.SIGUSR1, switch_cameras)
    signal.signal(signal.SIGUSR2, switch_cameras)
    rclpy.init()
    node = SyntheticInputs(args)
    node.publish_instruction()
    start = time.monotonic()
    next_frame = next_state = start
    next_fuzz = start + 0.5
    try:
        while (now := time.monotonic()) - start < args.duration:
            if now >= next_frame:
                if cameras_on:
                    node.publish_frames()
                next_frame += 1.0 / args.camera_rate
            if now >= next_state:
                node.publish_state()
                next_state += 1.0 / args.state_rate
            while args.fuzz_rate and now >= next_fuzz:
                node.publish_malformed()
                next_fuzz += 1.0 / args.fuzz_rate
            time.sleep(0.001)
        print(f'sent {node.sent}', flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
