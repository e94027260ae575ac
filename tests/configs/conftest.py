"""The tiny records every config run of tests/configs/ reads (one folder per multi-task data set)."""

import pytest

from tests.configs import config_runs


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  return config_runs.write_records(tmp_path_factory.mktemp('records'))
