"""The quick ablation job end to end: L=10 beats L=1, and collapses to it when the stack is broken.

The broken stack repeats each stack's first field L times, in training (`sampling.
train_flow_indices`) and in evaluation (`protocol_positions.flow_indices`): an L=10 stream then
sees what an L=1 stream sees, so its lead over L=1 must vanish.
"""

import json
import os

import numpy as np
import tensorflow as tf

from twostream_jax import config_loading
from twostream_jax.data import protocol_positions
from twostream_jax.data import sampling
from twostream_jax.experiments import ablations
from tests.config_fixtures import REPO_ROOT


def _quick_config(data_root, rows):
  c = config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', 'ablations.py'))
  c.ablations.quick = True
  c.ablations.quick_data_root = str(data_root)
  c.ablations.rows = rows
  return c


def _top1(result):
  return {r['name']: r['mean'] for r in result['rows']}


def test_quick_job_ranks_L10_above_L1_and_a_broken_stack_collapses_to_L1(tmp_path, monkeypatch):
  data_root = tmp_path / 'data'
  intact = ablations.run(_quick_config(data_root, 'temporal_L1,temporal_L10'), str(tmp_path / 'ok'))
  with open(tmp_path / 'ok' / ablations.ABLATIONS_JSON) as f:
    written = json.load(f)
  assert written['quick'] and [r['name'] for r in written['rows']] == ['temporal_L1', 'temporal_L10']
  assert written['orderings'][0]['lower'] == 'temporal_L1'
  assert '| temporal_L10 |' in (tmp_path / 'ok' / ablations.ABLATIONS_MD).read_text()
  top1 = _top1(intact)
  assert top1['temporal_L10'] >= top1['temporal_L1'] + 0.3, top1

  train_indices, test_indices = sampling.train_flow_indices, protocol_positions.flow_indices
  monkeypatch.setattr(sampling, 'train_flow_indices', lambda *a: tf.broadcast_to(
      train_indices(*a)[..., :1], tf.shape(train_indices(*a))))
  monkeypatch.setattr(protocol_positions, 'flow_indices', lambda *a: np.broadcast_to(
      test_indices(*a)[..., :1], test_indices(*a).shape).copy())
  broken = _top1(ablations.run(_quick_config(data_root, 'temporal_L10'), str(tmp_path / 'broken')))
  # L=1 is near chance (1/3): the broken L=10 must be as close to it as chance scores over 30 test
  # videos are to each other (binomial std ~0.09), and far below the intact L=10.
  assert abs(broken['temporal_L10'] - top1['temporal_L1']) <= 0.2, (broken, top1)
  assert broken['temporal_L10'] <= top1['temporal_L10'] - 0.3, (broken, top1)
