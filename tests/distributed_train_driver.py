"""One process of the two-process training test (tests/train/test_distributed_training.py).

  python tests/distributed_train_driver.py COORDINATOR PROCESS_ID NUM_PROCESSES DATA_DIR WORKDIR OUT.npz

Joins the run with jax.distributed (CPU collectives over gloo), trains the tiny config for
`NUM_STEPS` steps (validating on the held-out videos), saves this process's view of the final
variables to OUT.npz, then scores the test split with the protocol (`evaluate_run`), each process
reading its own videos; process 0 writes `<WORKDIR>/eval/test1/scores.npz`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from flax import traverse_util  # pylint: disable=g-import-not-at-top

NUM_STEPS = 3


def run_config(data_dir: str):
  """The config of the distributed run; the test's one-process reference uses the same."""
  from tests.config_fixtures import tiny_train_config  # pylint: disable=g-import-not-at-top
  config = tiny_train_config(data_dir)
  config.train.num_train_steps = NUM_STEPS
  config.train.checkpoint_every_steps = NUM_STEPS
  # Clip-level validation gathers labels and masks sharded over both processes.
  config.train.val_every_steps = NUM_STEPS
  config.eval.score_train_split = False
  return config


def flat_variables(state) -> dict[str, np.ndarray]:
  """'params/conv1/kernel' -> value, and the same for batch_stats, as numpy."""
  tree = jax.device_get({'params': state.params, 'batch_stats': state.batch_stats})
  return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(tree, sep='/').items()}


def main(coordinator, process_id, num_processes, data_dir, workdir, out_path):
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=int(num_processes),
                             process_id=int(process_id))
  # pylint: disable=g-import-not-at-top
  from twostream_jax.train import loop as train_loop
  from twostream_jax.train import protocol_evaluation
  from tests.config_fixtures import spec_of
  config = run_config(data_dir)
  state = train_loop.train(config, spec_of(config), workdir)
  np.savez(out_path, devices=np.array([jax.device_count(), jax.process_count()]),
           **flat_variables(state))
  protocol_evaluation.evaluate_run(config, spec_of(config), workdir, state)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(*sys.argv[1:])
