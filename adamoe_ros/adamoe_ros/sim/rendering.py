"""Offscreen camera rendering of a MuJoCo model with one cached Renderer per image size."""

import os

import mujoco
import numpy as np


def _release_egl_context() -> None:
    # mujoco.Renderer makes its EGL context current on every render but never releases it; a context
    # still current in one executor thread cannot be made current in another, so let go after each frame.
    if os.environ.get('MUJOCO_GL', '').lower() != 'egl':
        return
    from mujoco import egl

    if egl.EGL_DISPLAY is not None:  # set by the first context created
        egl.EGL.eglMakeCurrent(egl.EGL_DISPLAY, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_SURFACE, egl.EGL.EGL_NO_CONTEXT)


class CameraRenderer:
    """Renders named cameras of one model/data pair; shadows and reflections off for speed."""

    def __init__(self, model: mujoco.MjModel) -> None:
        """Keep the model; renderers are created lazily per (height, width)."""
        self._model = model
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}

    def render(self, data: mujoco.MjData, camera: str, height: int, width: int) -> np.ndarray:
        """Return an (height, width, 3) uint8 RGB frame from the named camera."""
        if mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            raise KeyError(f'unknown camera {camera!r}')
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = mujoco.Renderer(self._model, height=height, width=width)
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._renderers[(height, width)] = renderer
        try:
            renderer.update_scene(data, camera=camera)
            return renderer.render().copy()
        finally:
            _release_egl_context()

    def close(self) -> None:
        """Free the GL contexts."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
