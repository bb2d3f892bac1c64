"""Sim benchmark: physics rate, render rate per visual/quality setting (side by side), scripted expert success.

Run: python adamoe_ros/benchmarks/bench_sim.py [--frames 100] [--seeds 20]
"""

import argparse
import time

import mujoco
import numpy as np

from adamoe_ros.sim.expert_plan import run_scripted_episode
from adamoe_ros.sim.scene import SO101, SceneOptions
from adamoe_ros.sim.so101 import So101PickPlaceSim


def physics_steps_per_second(sim: So101PickPlaceSim, steps: int = 5000) -> float:
    """Return mj_step calls per wall second with the arm moving."""
    sim.reset(0)
    sim.set_joint_targets(np.array([0.5, 0.5, -0.5, 0.5, 0.5, 1.0]))
    start = time.perf_counter()
    sim.step(steps)
    return steps / (time.perf_counter() - start)


def render_pairs_per_second(sim: So101PickPlaceSim, frames: int, size: int, fast_flags: bool) -> float:
    """Return (front + wrist) frame pairs per second at size x size; fast_flags=False keeps MSAA and shadows."""
    if not fast_flags:
        sim.model.vis.quality.offsamples = 4
        sim.model.vis.quality.shadowsize = 4096
    renderer = mujoco.Renderer(sim.model, size, size)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = not fast_flags
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = not fast_flags
    sim.reset(0)
    for camera in SO101.camera_names:  # warm-up: texture upload, first-frame allocations
        renderer.update_scene(sim.data, camera=camera)
        renderer.render()
    start = time.perf_counter()
    for i in range(frames):
        sim.set_joint_targets(np.array([0.5 * np.sin(i / 10), 0.3, -0.3, 0.5, 0.0, 1.0]))
        sim.step(1)
        for camera in SO101.camera_names:
            renderer.update_scene(sim.data, camera=camera)
            renderer.render()
    renderer.close()
    return frames / (time.perf_counter() - start)


def main() -> None:
    """Print the measurements of one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--seeds', type=int, default=20)
    parser.add_argument('--size', type=int, default=128)
    args = parser.parse_args()

    fitted = So101PickPlaceSim()
    meshes = So101PickPlaceSim(scene_options=SceneOptions(primitive_visuals=False))
    print(f'physics: {physics_steps_per_second(fitted):.0f} mj_step/s')
    fast_fitted = render_pairs_per_second(fitted, args.frames, args.size, fast_flags=True)
    fast_meshes = render_pairs_per_second(meshes, args.frames, args.size, fast_flags=True)
    slow_meshes = render_pairs_per_second(meshes, max(args.frames // 5, 5), args.size, fast_flags=False)
    print(
        f'render {args.size}x{args.size}, front+wrist pairs/s: box-fitted visuals, no MSAA/shadows '
        f'{fast_fitted:.1f}; wheel meshes, no MSAA/shadows {fast_meshes:.1f}; wheel meshes, MSAA 4 + shadows '
        f'{slow_meshes:.1f}  (ratios {fast_fitted / fast_meshes:.1f}x, {fast_fitted / slow_meshes:.1f}x)'
    )

    start = time.perf_counter()
    results = [run_scripted_episode(fitted, seed) for seed in range(args.seeds)]
    wall = time.perf_counter() - start
    successes = sum(r.success for r in results)
    mean_episode = np.mean([r.episode_time for r in results])
    print(
        f'scripted expert: {successes}/{args.seeds} seeds solved, mean episode {mean_episode:.1f} s sim time, '
        f'{wall / args.seeds:.2f} s wall per episode (no rendering)'
    )
    fitted.randomize_goal = True
    results = [run_scripted_episode(fitted, seed) for seed in range(args.seeds)]
    print(f'scripted expert, randomised goal: {sum(r.success for r in results)}/{args.seeds} seeds solved')


if __name__ == '__main__':
    main()
