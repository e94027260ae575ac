r"""Entry point: train or evaluate a stream, or run an experiment, from an ml_collections config.

  python -m twostream_jax.main --config configs/temporal.py --workdir runs/temporal \
      [--config.data.data_dirs=DIR] [--config.<section>.<key>=value ...]

Modes (`--config.mode`): train | eval | train_eval. A config with a top-level `experiment` key
instead (configs/demo.py, configs/ablations.py) runs `twostream_jax.experiments.<experiment>.run`.
Several processes (hosts) train together when started with `--jax_distributed` (auto-detected
clusters: Cloud TPU, SLURM, ...) or with `--coordinator_address=host:port --num_processes=N
--process_id=i`. It builds the run's `DataSpec` once and dispatches; it defines its own flags
(as fuse and predict do theirs).

Exit status: 0 done; 1 a user error (one line); 75 (EX_TEMPFAIL) training stopped by SIGTERM or
SIGINT after checkpointing the step it was on: the same command resumes there (docs/training.md).
"""

from __future__ import annotations

import importlib
import os
import sys

# Before TensorFlow loads: keep its C++ start-up chatter out of the console.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

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


# XLA CPU's switch for YNNPACK convolutions (this jaxlib's default); an empty list leaves them to
# XLA's own Eigen convolutions, whose train step was the faster for resnet18 on a 2-core CPU
# (bench/bench_models.py --variants; bench/RESULTS.md).
_YNN_FLAG = 'xla_cpu_experimental_ynn_fusion_type'
CPU_CONVOLUTIONS = ('eigen', 'ynnpack')


def set_cpu_convolutions(choice: str) -> None:
  """Chooses the CPU backend's convolutions through XLA_FLAGS, before JAX starts its backends.

  Raises:
    ValueError: an unknown `train.cpu_convolutions`.
  """
  if choice not in CPU_CONVOLUTIONS:
    raise ValueError(f'train.cpu_convolutions must be one of {CPU_CONVOLUTIONS}, got {choice!r}')
  flags_now = os.environ.get('XLA_FLAGS', '')
  if choice == 'eigen' and _YNN_FLAG not in flags_now:  # The user's own XLA_FLAGS win.
    os.environ['XLA_FLAGS'] = f'{flags_now} --{_YNN_FLAG}='.strip()


def default_workdir(config_path: str) -> str:
  return os.path.join('runs', os.path.splitext(os.path.basename(config_path))[0])


def check_config_overrides(argv: list[str]) -> str | None:
  """Returns a message naming the first `--config.<key>` override that the config does not have.

  Runs before flag parsing, which would otherwise fail with a bare AttributeError.
  """
  from twostream_jax import config_loading  # pylint: disable=g-import-not-at-top
  path, overrides = None, []
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      path = arg.split('=', 1)[1]
    elif arg == '--config' and i + 1 < len(argv):
      path = argv[i + 1]
    elif arg.startswith('--config.'):
      overrides.append(arg[len('--config.'):].split('=', 1)[0])
  if not path or not overrides:
    return None
  try:
    config = config_loading.load_config_file(path)
  except FileNotFoundError as e:
    return str(e)
  for key in overrides:
    node = config
    for i, part in enumerate(key.split('.')):
      if not hasattr(node, 'keys') or part not in node.keys():
        where = '.'.join(key.split('.')[:i]) or 'the top level'
        known = ', '.join(sorted(node.keys())) if hasattr(node, 'keys') else '(not a section)'
        return (f'unknown config key {key!r} (--config.{key}): {where} has {known}. '
                f'Every training key is documented in configs/default.py; configs/demo.py and '
                'configs/ablations.py add the experiments\' keys.')
      node = node[part]
  return None


def data_spec_of(config):
  """The run's `DataSpec`, built once (fails in a second, before TensorFlow and JAX load, on a
  missing data set, an unknown split or a bad data setting)."""
  from twostream_jax.data import data_spec  # pylint: disable=g-import-not-at-top
  spec = data_spec.DataSpec.from_config(config.data)
  if config.mode != 'eval' and spec.val_split and config.train.val_every_steps and (
      spec.val_split.startswith('test') or spec.val_split == spec.eval_split):
    logging.warning("validating during training on %r, a test split: choosing a checkpoint or "
                    "stopping by it tunes on the test set. data.val_split='heldout' validates on "
                    "held-out training videos instead.", spec.val_split)
  return spec


def run_experiment(config, workdir: str) -> int:
  """Hands a config with an `experiment` key to `twostream_jax.experiments.<experiment>.run`."""
  from twostream_jax import experiments  # pylint: disable=g-import-not-at-top
  name = config.experiment
  if name not in experiments.NAMES:
    raise ValueError(f'config.experiment must be one of {experiments.NAMES}, got {name!r}')
  os.makedirs(workdir, exist_ok=True)
  importlib.import_module(f'twostream_jax.experiments.{name}').run(config, workdir)
  return 0


def run(config, workdir: str) -> int:
  """Runs the config's mode, or its experiment; returns the process exit status."""
  if 'experiment' in config:
    return run_experiment(config, workdir)
  mode = config.mode
  if mode not in ('train', 'eval', 'train_eval'):
    raise ValueError(f'config.mode must be train, eval or train_eval, got {mode!r}')
  spec = data_spec_of(config)
  os.makedirs(workdir, exist_ok=True)
  # Imported here so that `--help` and config errors come back before TensorFlow and JAX load.
  from twostream_jax.train import loop as train_loop  # pylint: disable=g-import-not-at-top
  from twostream_jax.train import protocol_evaluation  # pylint: disable=g-import-not-at-top
  state = None
  if mode in ('train', 'train_eval'):
    state = train_loop.train(config, spec, workdir)
  if mode in ('eval', 'train_eval'):
    protocol_evaluation.evaluate_run(config, spec, workdir, state)
  return 0


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  config = _CONFIG.value
  if not flags.FLAGS['verbosity'].present:
    # orbax and TF log every file they write at INFO; progress lines are printed instead.
    logging.set_verbosity(logging.WARNING)
  workdir = _WORKDIR.value or default_workdir(config_flags.get_config_filename(flags.FLAGS['config']))
  try:
    set_cpu_convolutions(config.train.cpu_convolutions)  # Before anything starts JAX.
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  initialize_distributed()
  # How a run stopped by SIGTERM/SIGINT exits, in any mode or experiment (JAX is loaded by now).
  from twostream_jax.train import preemption  # pylint: disable=g-import-not-at-top
  # One line, no traceback, for the errors a user makes (missing data, bad values, NaN loss).
  try:
    sys.exit(run(config, workdir))
  except preemption.Preempted:
    sys.exit(preemption.EXIT_PREEMPTED)  # Checkpointed: a scheduler's retry resumes there.
  except (ValueError, FileNotFoundError, FloatingPointError) as e:
    if flags.FLAGS['verbosity'].present:
      raise  # A user debugging asked for details: keep the traceback.
    print(f'error: {e}\n(run with --verbosity=0 for the traceback)', file=sys.stderr)
    sys.exit(1)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  _problem = check_config_overrides(sys.argv[1:])
  if _problem:
    print(f'error: {_problem}', file=sys.stderr)
    sys.exit(2)
  app.run(main)
