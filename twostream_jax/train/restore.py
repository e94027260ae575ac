"""A run's state: freshly initialised for the config's data, or restored from the latest checkpoint.

Shared by the training loop and by evaluation (which must not import the loop).

Resuming checks the new config against the one stored in the checkpoint (`meta['config']`): a key
that changes the data stream or the model (batch size, data sets, splits, modality, L, crops,
augmentation, model, optimiser, seed, ...) would splice two different runs into one checkpoint
history, so training refuses to resume, naming every such key with its old and new value. Only
the keys of `RESUMABLE_KEYS` (how long to train, logging, checkpointing, evaluation and
validation settings) may change; they are logged. Evaluation (`purpose='eval'`) only warns: scoring
a checkpoint on another split or data set is legitimate.

The number of devices may change between runs (the global batch is the same; only the reduction
order differs, and the replicated state is restored onto the new mesh); the number of processes
(hosts) may not, since each process has its own data stream (`data.train_dataset`): training
refuses it like a stream key.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from typing import Any

import jax
import ml_collections

from twostream_jax.data import data_spec
from twostream_jax.train import checkpointing
from twostream_jax.train import metric_writers
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from twostream_jax.train import task_heads
from twostream_jax.train.state import TrainState


def init_state(config: ml_collections.ConfigDict, spec: data_spec.DataSpec, mesh,
               use_init_from: bool = True) -> tuple[TrainState, Any]:
  """Builds the model for the run's data and a replicated, freshly initialised state.

  Returns:
    (state, model).
  """
  model = state_lib.build_model(config, spec.num_classes)
  init_rng = jax.random.fold_in(jax.random.key(config.seed), 0)
  size = spec.settings.crop_size
  shape = (size, size, spec.input_channels)
  state = state_lib.create_train_state(config, model, shape, init_rng,
                                             use_init_from=use_init_from)
  return sharding.replicate(state, mesh), model


# Keys that do not change the data stream or the model: a resumed run may change them (glob
# patterns over dotted key names). The one list of them: configs/default.py and the README point
# here. Every other key (including any key added later) refuses a resume when it differs.
RESUMABLE_KEYS = (
    'mode',
    'train.num_train_steps', 'train.log_every_steps', 'train.checkpoint_every_steps',
    'train.keep_checkpoints', 'train.val_every_steps', 'train.eval_batch_size',
    'train.cpu_convolutions',  # Which CPU kernels: float rounding only.
    'data.eval_split', 'data.test_num_frames', 'data.test_num_crops',
    'data.val_num_frames', 'data.val_num_crops', 'data.val_max_videos',
    # How the pipeline reads, not what it yields (a skipped corrupt record is logged).
    'data.decode_parallelism', 'data.skip_corrupt_records',
    # Read only at step 0; a checkpoint replaces the values.
    'model.init_from', 'model.init_from_partial',
    'eval.*',
)
# data.val_split changes the training stream only through the held-out videos it excludes.
_HELDOUT = 'heldout'
# Sections that training configs had before the experiments kept their own keys: checkpoints
# written then still hold them, and they never changed a run's data stream or model.
_RETIRED_SECTIONS = ('demo.', 'ablations.')
_ABSENT = '<absent>'


class ResumeConfigError(ValueError):
  """The config differs from the checkpoint's in keys that change the data stream or the model."""


def flat_keys(tree: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """A nested dict as {'section.key': value}."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flat_keys(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def _resumable(key: str, old: Any, new: Any) -> bool:
  if new == _ABSENT and key.startswith(_RETIRED_SECTIONS):
    return True
  if key == 'data.val_split':
    return _HELDOUT not in (old, new)
  return any(fnmatch.fnmatchcase(key, pattern) for pattern in RESUMABLE_KEYS)


def compare_configs(stored_json: str, config: ml_collections.ConfigDict
                    ) -> tuple[list[str], list[str]]:
  """The differences between a checkpoint's config and this one.

  Args:
    stored_json: `meta['config']` of a checkpoint (`config.to_json()` of the run that wrote it).
    config: the config of this run.

  Returns:
    (refused, allowed): one 'key: old -> new' line per differing key, split by whether the key
    changes the data stream or the model (refused) or not (allowed; `RESUMABLE_KEYS`). A key that
    one config lacks shows as '<absent>'.
  """
  old, new = flat_keys(json.loads(stored_json)), flat_keys(json.loads(config.to_json()))
  refused, allowed = [], []
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
    if a != b:
      (allowed if _resumable(key, a, b) else refused).append(f'{key}: {a!r} -> {b!r}')
  return refused, allowed


def check_resume(meta: dict[str, Any], config: ml_collections.ConfigDict, directory: str, *,
                 purpose: str) -> None:
  """Refuses (training) or warns about (evaluation) a checkpoint written with another config.

  Raises:
    ResumeConfigError: purpose 'train' and a key outside `RESUMABLE_KEYS` differs.
  """
  if 'config' not in meta:  # Checkpoints without a stored config: only the seed can be checked.
    refused = ([] if meta.get('seed') == config.seed
               else [f'seed: {meta.get("seed")!r} -> {config.seed!r}'])
    allowed = []
  else:
    refused, allowed = compare_configs(meta['config'], config)
  stored_processes = meta.get('process_count')  # Absent in checkpoints older than the key.
  if stored_processes is not None and stored_processes != jax.process_count():
    refused.append(f'processes (hosts, each with its own data stream): {stored_processes!r} -> '
                   f'{jax.process_count()!r}')
  if allowed:
    metric_writers.log('config changes since the checkpoint (they do not change the data stream '
                       'or the model): ' + '; '.join(allowed))
  if not refused:
    return
  if purpose == 'eval':
    logging.warning('evaluating a checkpoint of %s trained with another config: %s', directory,
                    '; '.join(refused))
    return
  lines = '\n'.join(f'  {line}' for line in refused)
  raise ResumeConfigError(
      f'{directory} holds a run trained with another config; these keys change the data stream '
      f'or the model, so resuming would mix two runs in one checkpoint history (old -> new):\n'
      f'{lines}\nUse another --workdir for the new settings, or set them back to resume.')


def restore_or_init(config: ml_collections.ConfigDict, spec: data_spec.DataSpec, mesh,
                    checkpointer: checkpointing.Checkpointer, *,
                    purpose: str = 'train') -> TrainState:
  """The latest checkpoint's state if there is one, else a fresh state (both replicated).

  Args:
    config: this run's config.
    spec: this run's data.
    mesh: the device mesh.
    checkpointer: over `<workdir>/checkpoints`.
    purpose: 'train' (resume training: a config that changes the data stream or the model is
      refused) or 'eval' (score a checkpoint: differences are warned about).

  Raises:
    ResumeConfigError: see `check_resume`.
  """
  if purpose not in ('train', 'eval'):
    raise ValueError(f"purpose must be 'train' or 'eval', got {purpose!r}")
  resuming = checkpointer.latest_step() is not None
  if resuming:  # Before building anything: a refused config fails in a second.
    check_resume(checkpointer.read_meta(), config, checkpointer.directory, purpose=purpose)
  # A checkpoint replaces every value: reading converted weights would be wasted I/O.
  state, _ = init_state(config, spec, mesh, use_init_from=not resuming)
  if resuming:
    # Heads are positional: refuse data sets listed in another order (train.task_heads), before
    # a restore that would fail on head shapes or, with equal class counts, swap the heads.
    task_heads.check_checkpoint_datasets(checkpointer.read_meta().get('datasets'),
                                         spec.names,
                                         checkpointer.directory)
    state, _ = checkpointer.restore(state)
    verb = 'resumed from' if purpose == 'train' else 'evaluating'
    metric_writers.log(f'{verb} {checkpointer.directory} at step {int(state.step)}')
  return state
