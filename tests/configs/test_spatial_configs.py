"""The spatial configs (and the small recipe) through `python -m twostream_jax.main` at their own
shapes (tests/configs/config_runs.py)."""

import pytest

from tests.configs import config_runs

CONFIGS = ['spatial.py', 'spatial_last_layer.py', 'small.py']


@pytest.mark.parametrize('config_name', CONFIGS)
def test_config_trains_two_steps_and_evaluates_one_video(config_name, records, tmp_path):
  config_runs.train_two_steps_and_evaluate_one_video(config_name, records, tmp_path)


def test_every_training_config_is_run_by_one_of_the_two_files():
  from tests.configs import test_temporal_configs  # pylint: disable=g-import-not-at-top
  assert set(CONFIGS) | set(test_temporal_configs.CONFIGS) == config_runs.training_config_names()
