"""The ablation job's rows, configs and table (the job itself: test_ablations_quick.py)."""

import os
import subprocess
import sys

import pytest

from twostream_jax import config_loading
from twostream_jax.experiments import ablation_table
from twostream_jax.experiments import ablations
from twostream_jax.experiments import synthetic_streams
from tests.config_fixtures import REPO_ROOT


def _config():
  return config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', 'ablations.py'))


def test_every_row_has_the_papers_number_and_a_config_that_differs_only_where_it_should():
  config = _config()
  rows = dict(ablations.row_settings(config))
  assert set(rows) | {'fusion'} == set(ablations.PAPER)
  made = {name: ablations._run_config(config, '/records', settings, name, seed=2)  # pylint: disable=protected-access
          for name, settings in rows.items()}
  assert [made[f'temporal_L{n}'].data.num_flow_fields for n in (1, 5, 10)] == [1, 5, 10]
  assert made['temporal_L10_no_mean_subtraction'].data.flow_mean_subtraction == 'none'
  assert made['temporal_L10'].data.flow_mean_subtraction == 'per_field'
  assert made['temporal_L10_trajectory'].data.stacking == 'trajectory'
  assert made['temporal_L10_bidirectional'].data.flow_direction == 'bidirectional'
  assert made['spatial_pretrained_last_layer'].optim.train_last_layer_only
  assert not made['spatial_pretrained_fine_tuned'].optim.train_last_layer_only
  for name, c in made.items():
    assert c.data.modality == ('rgb' if name.startswith('spatial') else 'flow')
    assert c.mode == 'train_eval' and c.data.data_dirs == '/records'
    assert not set(synthetic_streams.EXPERIMENT_KEYS) & set(c.keys())  # A plain training config.
    # The ablations' budget and test protocol; the seed index moves the training seed.
    steps = config.demo.spatial_steps if name.startswith('spatial') else config.demo.temporal_steps
    assert c.train.num_train_steps == steps and c.seed == config.seed + 2
    assert (c.data.test_num_frames, c.data.test_num_crops, c.data.crop_size) == (5, 2, 56)


def test_rows_subset_and_unknown_rows():
  config = _config()
  config.ablations.rows = 'temporal_L1,spatial_from_scratch'
  assert [n for n, _ in ablations.row_settings(config)] == ['temporal_L1', 'spatial_from_scratch']
  config.ablations.rows = 'temporal_L2'
  with pytest.raises(ValueError, match='unknown rows'):
    ablations.row_settings(config)


def test_the_table_puts_mean_std_and_the_paper_beside_each_row_and_checks_the_orderings():
  rows = [{'name': 'temporal_L1', 'setting': 'L=1', 'paper_top1': 73.9,
           **ablation_table.summarise([0.30, 0.34, 0.32])},
          {'name': 'temporal_L10', 'setting': 'L=10', 'paper_top1': 81.0,
           **ablation_table.summarise([0.60, 0.62, 0.64])},
          {'name': 'temporal_L10_no_mean_subtraction', 'setting': 'no mean', 'paper_top1': 79.9,
           **ablation_table.summarise([0.20, 0.70, 0.45])}]
  checks = ablation_table.orderings({r['name']: r for r in rows})
  assert [(c['lower'], c['higher'], c['shown']) for c in checks] == [
      ('temporal_L1', 'temporal_L10', True),
      ('temporal_L10_no_mean_subtraction', 'temporal_L10', False)]  # Its spread is too wide.
  text = ablation_table.markdown(rows, checks)
  assert '| temporal_L1 | L=1 | 32.0 +- 2.0 | 3 | 73.9 |' in text
  assert 'temporal_L1 < temporal_L10: shown (diff +30.0, 2 std 4.0)' in text
  assert 'NOT shown' in text
  # '<=': shown unless the lower row is clearly above.
  tight = ablation_table.summarise([0.5, 0.5])
  assert ablation_table.check_ordering(ablation_table.summarise([0.52, 0.52]), '<=', tight)['shown'] is False
  assert ablation_table.check_ordering(ablation_table.summarise([0.48, 0.52]), '<=', tight)['shown']


def test_main_hands_the_config_to_the_ablations():
  # An unknown row fails in the experiment's first step, before any video or training.
  out = subprocess.run([sys.executable, '-m', 'twostream_jax.main', '--config=configs/ablations.py',
                        '--config.ablations.rows=temporal_L2'], cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 1, out.stderr[-3000:]
  assert 'ablations.rows names unknown rows' in out.stderr
