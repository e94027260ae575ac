"""One process of the two-process training test (tests/test_distributed_training.py).

  python tests/distributed_train_driver.py COORDINATOR PROCESS_ID NUM_PROCESSES DATA_DIR WORKDIR OUT.npz

Joins the run with jax.distributed (CPU collectives over gloo), trains the tiny config for 2 steps
and saves this process's view of the final parameters to OUT.npz.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from flax import traverse_util  # pylint: disable=g-import-not-at-top


def main(coordinator, process_id, num_processes, data_dir, workdir, out_path):
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=int(num_processes),
                             process_id=int(process_id))
  from tests.config_fixtures import tiny_train_config  # pylint: disable=g-import-not-at-top
  from twostream_jax.train import loop as train_loop  # pylint: disable=g-import-not-at-top
  config = tiny_train_config(data_dir)
  config.train.num_train_steps = 2
  config.train.checkpoint_every_steps = 2
  # Clip-level validation gathers labels and masks sharded over both processes.
  config.train.val_every_steps = 2
  state = train_loop.train(config, workdir)
  flat = traverse_util.flatten_dict(jax.device_get(state.params), sep='/')
  np.savez(out_path, devices=np.array([jax.device_count(), jax.process_count()]),
           **{k: np.asarray(v) for k, v in flat.items()})
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(*sys.argv[1:])
