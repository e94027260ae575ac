"""Configs for tests: configs/default.py loaded by path, and a tiny training config."""

import os

import ml_collections

from twostream_jax import config_loading

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_config() -> ml_collections.ConfigDict:
  return config_loading.load_config_file(os.path.join(REPO_ROOT, 'configs', 'default.py'))


def tiny_train_config(data_dirs: str, modality: str = 'flow') -> ml_collections.ConfigDict:
  """A config that trains the tiny net for a few steps on tests/record_fixtures data."""
  c = default_config()
  c.data.data_dirs = data_dirs
  c.data.modality = modality
  c.data.num_flow_fields = 2
  c.data.crop_size = 24
  c.data.normalization = 'unit'
  c.data.test_num_frames = 3
  c.data.test_num_crops = 2
  c.data.val_max_videos = 4
  c.model.name = 'tiny'
  c.model.dropout_rate = 0.0
  c.optim.learning_rate = 0.05
  c.optim.decay_boundaries_steps = '4'
  c.optim.weight_decay = 1e-4
  c.train.global_batch_size = 4
  c.train.eval_batch_size = 4
  c.train.num_train_steps = 6
  c.train.log_every_steps = 2
  c.train.checkpoint_every_steps = 3
  c.train.keep_checkpoints = 5
  c.train.val_every_steps = 0
  return c


def spec_of(config: ml_collections.ConfigDict):
  """The run's `DataSpec`, as the entry point builds it."""
  from twostream_jax.data import data_spec  # pylint: disable=g-import-not-at-top
  return data_spec.DataSpec.from_config(config.data)
