"""scripts/ablation.py: a stopped training stage resumes only under the recipe that made its checkpoints."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / 'scripts' / 'ablation.py'


def load_script():
    spec = importlib.util.spec_from_file_location('ablation_script', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('recorded', [None, ['--steps', '20000']])
def test_checkpoints_of_another_recipe_are_refused_and_kept(tmp_path: Path, recorded: list[str] | None) -> None:
    ablation = load_script()
    out = tmp_path / 'pretrain'
    checkpoint = out / 'checkpoints' / 'last' / 'pretrained_model'
    checkpoint.mkdir(parents=True)
    (checkpoint / 'config.json').write_text('{}')
    if recorded is not None:
        (out / 'recipe.json').write_text(json.dumps(recorded))
    args = argparse.Namespace(batch_size=16, save_every=500)
    with pytest.raises(RuntimeError, match='holds checkpoints of another recipe; delete it'):
        ablation.train(out, tmp_path / 'dataset', 40000, 0, 1, 20.0, ['--routing-mode', 'dense'], args)
    assert (checkpoint / 'config.json').exists()  # nothing was overwritten or trained
    assert recorded is None or json.loads((out / 'recipe.json').read_text()) == recorded
