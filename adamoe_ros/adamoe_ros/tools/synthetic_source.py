"""Synthetic teleop streams whose values encode their own stamps (for recorder tests and benchmarks).

At `rate` Hz, tick k publishes (all stamped t_k): every camera as a flat image of grey level (k % 32) * 8, follower
`joint_states` with every position = t_k - offset, leader `leader/joint_states` = t_k - offset + 1000 on every joint
but the last, which holds k itself, `sim/cube_position` = [t, -t, 2t] and a latched instruction. With --sim-time it
also publishes /clock = t_k (starting at 1 s), so stamps and the receiver's clock are sim time. --gap-every/--gap-length
skip joint_states for a while to provoke rejected frames. --texture adds a moving textured scene with sensor noise to
the grey level, so compression costs what it costs on a real camera (benchmarks). --stamps FILE writes t_k (ns) as
line k when tick k is published. On exit it prints how many ticks it published.
"""

import argparse
import time
from typing import TextIO

import cv2
import numpy as np
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from adamoe_contract.robots import load_robot_profile
from adamoe_ros.node_main import run_node
from adamoe_ros.ros_env import LATCHED_QOS, NS_PER_S, RELIABLE_QOS, SENSOR_QOS, ns_to_stamp
from adamoe_ros.ros_image import numpy_to_image

SO101 = load_robot_profile('so101')  # the recorder's default robot

LEADER_OFFSET = 1000.0
SIM_START_S = 1.0


def camera_topic(camera: str) -> str:
    """Where the source publishes a camera's raw images (the recorder's default robot's topic for it)."""
    return SO101.camera_topic(camera, 'raw')


def grey_level(tick: int) -> int:
    """Grey level of the images of tick k."""
    return (tick % 32) * 8


def image_size(text: str) -> tuple[int, int]:
    """'64' -> (64, 64); '480x640' -> (480, 640) (height x width)."""
    height, _, width = text.partition('x')
    return int(height), int(width or height)


def frames(size: tuple[int, int], texture: bool, count: int = 32) -> list[np.ndarray]:
    """Return the images of ticks 0..count-1 (repeating): flat grey, or grey plus a moving texture."""
    flat = [np.full((*size, 3), grey_level(k), np.uint8) for k in range(count)]
    if not texture:
        return flat
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 96, (size[0] // 16 + 1, size[1] // 16 + 1, 3), dtype=np.uint8)
    scene = cv2.resize(coarse, (size[1], size[0]), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    images = []
    for k, grey in enumerate(flat):
        noise = rng.integers(-3, 4, (*size, 3), dtype=np.int16)  # sensor noise: no two frames alike
        images.append(np.clip(grey // 2 + np.roll(scene, 8 * k, axis=1) + noise, 0, 255).astype(np.uint8))
    return images


class SyntheticTeleopSource(Node):
    """Publishes the recorder's input topics with self-describing values."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__('synthetic_teleop_source')
        self._args = args
        self._tick = 0
        self._images = [numpy_to_image(image, 'rgb8') for image in frames(args.size, args.texture)]
        self._cams = [self.create_publisher(Image, camera_topic(c), SENSOR_QOS) for c in args.cameras]
        self._joints = self.create_publisher(JointState, 'joint_states', RELIABLE_QOS)
        self._leader = self.create_publisher(JointState, 'leader/joint_states', RELIABLE_QOS)
        self._cube = self.create_publisher(Float64MultiArray, SO101.extra_state_topic, RELIABLE_QOS)
        self._clock_pub = self.create_publisher(Clock, '/clock', RELIABLE_QOS) if args.sim_time else None
        self.create_publisher(String, 'instruction', LATCHED_QOS).publish(String(data=args.instruction))
        # Line-buffered: the lines written so far survive a SIGKILL of this process.
        self._stamps: TextIO | None = open(args.stamps, 'w', buffering=1) if args.stamps else None
        self._wall_start = time.monotonic()
        self.create_timer(1.0 / args.rate, self._publish)  # wall timer: this node is the time source

    def _stamp_ns(self) -> int:
        if self._args.sim_time:
            return round((SIM_START_S + self._tick / self._args.rate) * NS_PER_S)
        return time.time_ns()

    def _publish(self) -> None:
        stamp_ns = self._stamp_ns()
        stamp = ns_to_stamp(stamp_ns)
        if self._clock_pub is not None:
            self._clock_pub.publish(Clock(clock=stamp))
        value = stamp_ns / NS_PER_S - self._args.offset
        for pub in self._cams:
            img = self._images[self._tick % 32]
            img.header.stamp = stamp
            pub.publish(img)
        in_gap = self._args.gap_every > 0 and (self._tick % self._args.gap_every) < self._args.gap_length
        if not in_gap:
            state = JointState(name=list(SO101.joint_names), position=[value] * len(SO101.joint_names))
            state.header.stamp = stamp
            self._joints.publish(state)
        # The tick itself, not only its stamp: a receiver tells which tick a frame took without rounding stamps,
        # which wall-clock jitter and skipped timer periods move off the rate's grid (float32 holds it exactly).
        leader_values = [value + LEADER_OFFSET] * (len(SO101.joint_names) - 1) + [float(self._tick)]
        leader = JointState(name=list(SO101.joint_names), position=leader_values)
        leader.header.stamp = stamp
        self._leader.publish(leader)
        self._cube.publish(Float64MultiArray(data=[value, -value, 2 * value]))
        if self._stamps is not None:
            self._stamps.write(f'{stamp_ns}\n')
        self._tick += 1

    def destroy_node(self) -> None:
        """Close the stamps file, then destroy the node."""
        if self._stamps is not None:
            self._stamps.close()
        super().destroy_node()

    def summary(self) -> str:
        """How many ticks were published (each: one image per camera) at what mean rate."""
        seconds = time.monotonic() - self._wall_start
        return f'published {self._tick} ticks in {seconds:.1f} s ({self._tick / seconds:.2f} Hz) on each topic'


def main(argv: list[str] | None = None) -> int:
    """Run the source until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--size', type=image_size, default=(64, 64), help='HEIGHTxWIDTH, or one number (square)')
    parser.add_argument('--texture', action='store_true', help='textured moving images with noise (not flat grey)')
    parser.add_argument('--cameras', nargs='+', default=list(SO101.camera_names))
    parser.add_argument('--sim-time', action='store_true')
    parser.add_argument('--offset', type=float, default=0.0, help='subtracted from stamps (s) in the values')
    parser.add_argument('--gap-every', type=int, default=0, help='ticks between joint_states gaps (0: none)')
    parser.add_argument('--gap-length', type=int, default=0, help='ticks without joint_states per gap')
    parser.add_argument('--instruction', default='pick up the cube')
    parser.add_argument('--stamps', help="file to write each published tick's stamp (ns) to, one line per tick")
    args = parser.parse_args(argv)
    made: list[SyntheticTeleopSource] = []

    def make() -> SyntheticTeleopSource:
        made.append(SyntheticTeleopSource(args))
        return made[0]

    status = run_node(make)
    if made:
        print(made[0].summary(), flush=True)
    return status


if __name__ == '__main__':
    raise SystemExit(main())
