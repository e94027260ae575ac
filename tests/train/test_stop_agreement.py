"""A SIGTERM to one of two jax.distributed processes stops both after the same step."""

import os
import subprocess
import sys

from tests import local_processes
from tests.config_fixtures import REPO_ROOT

DRIVER = os.path.join(REPO_ROOT, 'tests', 'train', 'stop_agreement_driver.py')


def test_a_signal_to_one_process_stops_both_after_the_same_step():
  coordinator = local_processes.coordinator_address()
  env = local_processes.one_device_env()
  # Process 1 is signalled during step 5; process 0 never is.
  procs = [subprocess.Popen([sys.executable, DRIVER, coordinator, str(i), str(at)], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i, at in ((0, -1), (1, 5))]
  outputs = local_processes.outputs_of_all(procs, 240, 'the two processes')
  # The flag all-reduced at step 5 is read at step 6: both stop after step 6.
  assert 'stop after step 6 (signal here: False)' in outputs[0], outputs[0][-3000:]
  assert 'stop after step 6 (signal here: True)' in outputs[1], outputs[1][-3000:]
