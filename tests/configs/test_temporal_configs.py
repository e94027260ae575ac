"""The temporal configs of configs/ through `python -m twostream_jax.main` at their own shapes
(tests/configs/config_runs.py)."""

import pytest

from tests.configs import config_runs

CONFIGS = ['temporal.py', 'temporal_multitask.py']


@pytest.mark.parametrize('config_name', CONFIGS)
def test_config_trains_two_steps_and_evaluates_one_video(config_name, records, tmp_path):
  config_runs.train_two_steps_and_evaluate_one_video(config_name, records, tmp_path)
