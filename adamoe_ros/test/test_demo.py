"""The demo and its evaluation over ROS: the scene from the bundle's privileged state or named, one task's seeds."""

import json
import shutil

import pytest

from adamoe_contract import bundle_format as fmt
from adamoe_ros import demo
from adamoe_ros.bundles import MULTITASK as MULTITASK_BUNDLE
from adamoe_ros.closed_loop.instructions import task_seeds
from adamoe_ros.closed_loop.ros_eval import RosEvalConfig, evaluate_over_ros
from adamoe_ros.sim.tasks import MULTITASK


def demo_bundle_copy(folder, edit):
    """A copy of the demo bundle whose metadata `edit` changed in place, with its content hash made valid again."""
    shutil.copytree(demo.DEMO_BUNDLE, folder)
    meta = json.loads((folder / fmt.METADATA_FILE).read_text())
    edit(meta)
    (folder / fmt.METADATA_FILE).write_text(json.dumps(meta))
    meta['bundle_id'] = fmt.content_hash(folder)
    (folder / fmt.METADATA_FILE).write_text(json.dumps(meta))
    return folder


@pytest.fixture
def joints_only_bundle(tmp_path):
    """The demo bundle with its privileged state removed from the contract (the graphs take padded state)."""

    def joints_only(meta):
        joints = len(meta['joint_names'])
        meta['state_names'], meta['state_dim'] = meta['joint_names'], joints
        state = meta['normalization']['state']
        for key, value in state.items():
            if isinstance(value, list):
                state[key] = value[:joints]

    return demo_bundle_copy(tmp_path / 'joints_only', joints_only)


def test_a_cameras_and_joints_bundle_must_name_its_scene(joints_only_bundle, tmp_path, capsys):
    with pytest.raises(SystemExit):
        demo.main(['--bundle', str(joints_only_bundle), '--out', str(tmp_path / 'out')])
    assert 'reads no privileged state, so it does not say its scene: pass --scene' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_a_privileged_state_that_no_scene_publishes_is_refused(tmp_path, capsys):
    def rename_privileged_state(meta):
        joints = len(meta['joint_names'])
        meta['state_names'] = meta['joint_names'] + [f'other_{name}' for name in meta['state_names'][joints:]]

    bundle = demo_bundle_copy(tmp_path / 'other_state', rename_privileged_state)
    with pytest.raises(SystemExit):
        demo.main(['--bundle', str(bundle), '--out', str(tmp_path / 'out')])
    assert 'no scene publishes the state' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_a_scene_that_does_not_publish_the_bundles_state_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        demo.main(['--bundle', str(MULTITASK_BUNDLE), '--scene', 'pick_place', '--out', str(tmp_path / 'out')])
    assert 'scene pick_place publishes another' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_the_named_scene_is_run_over_ros(joints_only_bundle, tmp_path):
    out = tmp_path / 'out'
    # fmt: off
    demo.main(['--bundle', str(joints_only_bundle), '--scene', MULTITASK.name, '--episodes', '2', '--max-time', '1',
               '--out', str(out)])
    # fmt: on
    episodes = json.loads((out / 'results.json').read_text())['episodes']
    assert [e['task'] for e in episodes] == [MULTITASK.task_for_seed(e['seed']).name for e in episodes]
    assert len({e['task'] for e in episodes}) == 2  # consecutive seeds, different instructions


def test_evaluation_over_ros_of_one_task_takes_that_tasks_seeds():
    # fmt: off
    cfg = RosEvalConfig(bundle=MULTITASK_BUNDLE, episodes=2, first_seed=2000, max_time=0.5, scene=MULTITASK.name,
                        task='stack_blue_on_red')
    # fmt: on
    episodes = evaluate_over_ros(cfg, log=print)
    assert [e.seed for e in episodes] == task_seeds(MULTITASK, cfg.task, 2000, 2)
    assert {e.task for e in episodes} == {cfg.task}
