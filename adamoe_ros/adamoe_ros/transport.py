"""The Fast DDS transport profile for camera-sized messages, and how our launchers apply it.

Fast DDS reads its profile file from an environment variable once per process, when the first participant is made,
so a launcher must set it before it starts a node: the launch files do it for the processes they start, and the
in-process runner for itself. A file the user chose (either variable set, even to '') always wins.
"""

import os
from collections.abc import Mapping
from pathlib import Path

PACKAGE = 'adamoe_ros'
PROFILE_FILE = 'fastdds_shm.xml'
# Fast DDS 3 (Kilted) reads the first; Fast DDS 2 (Humble, Jazzy) reads the second, which Kilted's rmw still honours
# with a deprecation warning. A user's setting of either wins; we set only the first (the ROS 2 we run on).
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


def shm_profile_path() -> Path:
    """Return the shipped profile: share/adamoe_ros/config in an install, else config/ of the source tree."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:  # a plain Python install without ament_index_python
        share = None
    else:
        try:
            share = Path(get_package_share_directory(PACKAGE))
        except PackageNotFoundError:  # an editable install (the venv route): no share folder
            share = None
    candidates = [share / 'config' / PROFILE_FILE] if share is not None else []
    candidates.append(Path(__file__).resolve().parent.parent / 'config' / PROFILE_FILE)
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f'{PROFILE_FILE} not found (looked at {", ".join(map(str, candidates))})')


def shm_profile_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to set so Fast DDS loads the shipped profile; {} when the user set either variable."""
    environ = os.environ if environ is None else environ
    if any(name in environ for name in PROFILE_VARIABLES):
        return {}
    return {PROFILE_VARIABLES[0]: str(shm_profile_path())}


def apply_shm_profile() -> str:
    """Set the profile variables for this process unless the user did; returns the profile file in effect.

    Call before the process's first rclpy.init: Fast DDS has read its profiles by then.
    """
    os.environ.update(shm_profile_environment())
    return next((os.environ[name] for name in PROFILE_VARIABLES if os.environ.get(name)), '')
