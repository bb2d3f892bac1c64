"""Robot profiles: the shipped ones load with their facts, and every kind of bad profile is a clear error."""

from pathlib import Path

import pytest
import yaml

from adamoe_contract.robots import ROBOTS_DIR, RobotProfileError, load_robot_profile, shipped_robot_profiles


def test_shipped_profiles_load_by_name_and_by_path():
    assert shipped_robot_profiles() == ['aloha', 'so101']
    so101 = load_robot_profile('so101')
    assert so101.joint_names == ('shoulder_pan', 'shoulder_lift', 'elbow_flex', 'wrist_flex', 'wrist_roll', 'gripper')
    assert so101.camera_names == ('front', 'wrist')
    assert so101.state_names == (*so101.joint_names, 'cube_x', 'cube_y', 'cube_z')
    assert so101.extra_state_topic == 'sim/cube_position'
    assert so101.default_instruction == 'pick up the cube and place it on the target'
    assert so101.max_velocity == (2.0, 2.0, 2.0, 2.0, 3.0, 3.0)
    assert load_robot_profile(ROBOTS_DIR / 'so101.yaml') == so101
    assert load_robot_profile(str(ROBOTS_DIR / 'so101.yaml')) == so101
    aloha = load_robot_profile('aloha')
    assert len(aloha.joint_names) == 14 and aloha.joint_names[0] == 'left_waist'
    assert {c.transport for c in aloha.cameras} == {'compressed'} and not aloha.extra_state_names


def test_camera_topics_are_the_profiles_else_the_convention():
    aloha = load_robot_profile('aloha')
    assert aloha.camera_transport('cam_high') == 'compressed'
    assert aloha.camera_topic('cam_high') == 'cam_high/image_raw/compressed'
    # A transport the profile does not stream, or a camera it does not list, takes the conventional topic.
    assert aloha.camera_topic('cam_high', 'raw') == 'cameras/cam_high/image_raw'
    assert aloha.camera_transport('top') == 'raw' and aloha.camera_topic('top') == 'cameras/top/image_raw'
    assert aloha.camera_topic('top', 'compressed') == 'cameras/top/image_raw/compressed'
    with pytest.raises(ValueError, match='transport'):
        aloha.camera_topic('top', 'theora')


@pytest.mark.parametrize('name', ['', 'ur5', 'missing/profile.yaml'])
def test_unknown_profile_names_the_shipped_ones(name):
    with pytest.raises(RobotProfileError, match='so101' if '/' not in name else 'not found'):
        load_robot_profile(name)


def _so101_data() -> dict:
    return yaml.safe_load((ROBOTS_DIR / 'so101.yaml').read_text())


def _edit(data: dict, path: str, value: object) -> dict:
    *parents, last = path.split('.')
    node = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ('path', 'value', 'problem'),
    [
        ('joints.0.lower', 2.5, r"lower limit must be below upper limit for \['shoulder_pan'\]"),
        ('joints.1.upper', 'high', r'joints\[1\]\.upper must be a number'),
        ('joints.2.max_velocity', 0.0, 'max_velocity must be positive'),
        ('joints.3.lower', float('nan'), 'must be finite'),
        ('joints.4.name', 'shoulder_pan', 'joint names must be unique'),
        ('joints.5.max_velocity', KeyError, r"joints\[5\]: missing keys \['max_velocity'\]"),
        ('joints.0.effort', 3.0, r"unknown keys \['effort'\]"),
        ('cameras.1.transport', 'theora', "transport 'theora'"),
        ('cameras.0.name', 'wrist', 'camera names must be unique'),
        ('extra_state.names', ['cube_x', 'gripper'], 'differ from the joints'),
        ('extra_state.topic', '', 'both names and a topic'),
        ('joints', {'name': 'x'}, 'joints must be a list'),
        ('name', KeyError, r"missing keys \['name'\]"),
        ('limits', [1.0], r"unknown keys \['limits'\]"),
    ],
)
def test_bad_profiles_are_refused_with_the_file_and_the_problem(tmp_path: Path, path, value, problem):
    bad = tmp_path / 'bad.yaml'
    bad.write_text(yaml.safe_dump(_edit(_so101_data(), path, value)))
    with pytest.raises(RobotProfileError, match=problem) as err:
        load_robot_profile(bad)
    assert str(bad) in str(err.value)


def test_unparsable_yaml_is_refused(tmp_path: Path):
    bad = tmp_path / 'broken.yaml'
    bad.write_text('name: [unclosed\n')
    with pytest.raises(RobotProfileError, match='not valid YAML'):
        load_robot_profile(bad)
    bad.write_text('- just a list\n')
    with pytest.raises(RobotProfileError, match='must be a mapping'):
        load_robot_profile(bad)
