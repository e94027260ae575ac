r"""Entry point: train or evaluate a stream, or run the synthetic demo, from an ml_collections config.

  python -m twostream_jax.main --config configs/temporal.py --workdir runs/temporal \
      [--config.data.data_dirs=DIR] [--config.<section>.<key>=value ...]

Modes (`--config.mode`): train | eval | train_eval | demo. Several processes (hosts) train together
when started with `--jax_distributed` (auto-detected clusters: Cloud TPU, SLURM, ...) or with
`--coordinator_address=host:port --num_processes=N --process_id=i`. This is the only module of the
package that defines flags.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Path to a config file (configs/*.py).',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Where checkpoints, TensorBoard events, scores and '
                               'results go (default: runs/<config file name>).')
_JAX_DISTRIBUTED = flags.DEFINE_bool('jax_distributed', False, 'Call jax.distributed.initialize() '
                                     'with auto-detected cluster settings.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', '', 'host:port of process 0, to run '
                                   'several processes without an auto-detected cluster.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 1, 'Number of processes (with '
                                      '--coordinator_address).')
_PROCESS_ID = flags.DEFINE_integer('process_id', 0, 'This process (with --coordinator_address).')


def initialize_distributed() -> None:
  """Joins the processes of a multi-process run, if the flags ask for one."""
  import jax  # pylint: disable=g-import-not-at-top
  if _COORDINATOR.value:
    if jax.config.jax_platforms in (None, '', 'cpu') or os.environ.get('JAX_PLATFORMS') == 'cpu':
      # CPU devices of several processes talk through gloo.
      jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  elif _JAX_DISTRIBUTED.value:
    jax.distributed.initialize()


def default_workdir(config_path: str) -> str:
  return os.path.join('runs', os.path.splitext(os.path.basename(config_path))[0])


def run(config, workdir: str) -> int:
  """Runs the config's mode; returns the process exit status."""
  # Imported here so that `--help` and config errors come back before TensorFlow and JAX load.
  from twostream_jax import train_loop  # pylint: disable=g-import-not-at-top
  from twostream_jax import evaluation  # pylint: disable=g-import-not-at-top

  os.makedirs(workdir, exist_ok=True)
  mode = config.mode
  if mode == 'demo':
    from twostream_jax import demo  # pylint: disable=g-import-not-at-top
    demo.run_demo(config, workdir)
    return 0
  if mode not in ('train', 'eval', 'train_eval'):
    raise ValueError(f'config.mode must be train, eval, train_eval or demo, got {mode!r}')
  state = None
  if mode in ('train', 'train_eval'):
    state = train_loop.train(config, workdir)
  if mode in ('eval', 'train_eval'):
    evaluation.evaluate_run(config, workdir, state)
  return 0


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  config = _CONFIG.value
  workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS['config']))
  initialize_distributed()
  # Fail early with one line for the errors a user makes (missing data, bad keys or values).
  from twostream_jax import dataset_metadata  # pylint: disable=g-import-not-at-top
  from twostream_jax import train_loop  # pylint: disable=g-import-not-at-top
  try:
    sys.exit(run(config, workdir))
  except (dataset_metadata.DatasetError, ValueError, FileNotFoundError,
          train_loop.NonFiniteLossError) as e:
    logging.error('%s', e)
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main)
