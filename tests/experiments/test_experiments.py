"""The experiments' place: configs that are either training or experiment configs, main's dispatch,
stream configs without experiment keys, and experiments that import no entry point."""

import ast
import os
import pathlib
import sys
import types

import pytest

from twostream_jax import config_loading
from twostream_jax import experiments
from twostream_jax import main
from twostream_jax.experiments import synthetic_streams
from tests.config_fixtures import REPO_ROOT

_CONFIGS = sorted(pathlib.Path(REPO_ROOT, 'configs').glob('*.py'))
_ENTRY_POINTS = {'main', 'fuse', 'predict'}


def _load(name):
  return config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', name))


@pytest.mark.parametrize('path', _CONFIGS, ids=lambda p: p.name)
def test_a_config_is_a_training_config_or_an_experiment(path):
  config = config_loading.load_config_file(str(path))
  if 'experiment' in config:
    assert config.experiment in experiments.NAMES and 'mode' not in config
  else:  # What training stores in its checkpoints: no experiment key.
    assert 'mode' in config and not set(synthetic_streams.EXPERIMENT_KEYS) & set(config.keys())


@pytest.mark.parametrize('name', ['demo.py', 'ablations.py'])
def test_streams_of_an_experiment_are_plain_training_configs(name):
  config = _load(name)
  streams = synthetic_streams.stream_configs(config, '/records')
  default = _load('default.py')
  for stream in streams.values():
    assert set(stream.keys()) == set(default.keys())
    assert stream.mode == 'train_eval' and stream.data.data_dirs == '/records'
    assert stream.is_locked
  assert 'experiment' in config  # The experiment's own config is left as it was.


def test_main_hands_an_experiment_config_to_its_module(monkeypatch, tmp_path):
  calls = []
  fake = types.SimpleNamespace(run=lambda config, workdir: calls.append((config, workdir)))
  monkeypatch.setitem(sys.modules, 'twostream_jax.experiments.demo', fake)
  config = _load('demo.py')
  assert main.run(config, str(tmp_path / 'run')) == 0
  assert calls == [(config, str(tmp_path / 'run'))]
  config.unlock()
  config.experiment = 'nope'
  with pytest.raises(ValueError, match="config.experiment must be one of"):
    main.run(config, str(tmp_path / 'run'))


def test_experiments_import_no_entry_point_nor_one_another():
  # Modules of the experiments, not experiments.
  shared = {'synthetic_streams', 'ablation_table', 'rehearsal_bill', 'rehearsal_limits',
            'stage_runner'}
  for path in pathlib.Path(experiments.__file__).parent.glob('*.py'):
    for node in ast.walk(ast.parse(path.read_text())):
      names = []
      if isinstance(node, ast.ImportFrom) and (node.module or '').startswith('twostream_jax'):
        names = [f'{node.module}.{a.name}' for a in node.names]
      elif isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      for name in names:
        parts = name.split('.')
        assert not (parts[0] == 'twostream_jax' and len(parts) > 1 and
                    parts[1] in _ENTRY_POINTS), f'{path.name} imports {name}'
        if parts[:2] == ['twostream_jax', 'experiments'] and len(parts) > 2:
          assert parts[2] in shared, f'{path.name} imports {name}'
