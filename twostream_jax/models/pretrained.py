"""Pretrained variables on disk: save, load (orbax) and merge into a freshly initialised model.

A pretrained directory, as `tools/convert_torchvision.py` writes it and a training config names it
(`init_from`), holds

    <dir>/variables/       orbax checkpoint of {'params': ..., 'batch_stats': ...}
    <dir>/conversion.json  where the weights came from and how inputs must be preprocessed

`merge_pretrained` lists every leaf it could not load (missing, or another shape); the caller
(`train.state.create_train_state`) refuses such a partial load unless `model.init_from_partial`
allows it, and `check_normalization` compares conversion.json's input preprocessing with the
pipeline's `data.normalization`, so that neither a half-loaded net nor wrongly scaled inputs go
unnoticed.

Neither torch nor TensorFlow is imported here, so training hosts need neither.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from flax import traverse_util

VARIABLES_SUBDIR = 'variables'
INFO_FILENAME = 'conversion.json'
_COLLECTIONS = ('params', 'batch_stats')
# What each `data.normalization` does to RGB in [0, 1]: (mean, std) per channel. The 'imagenet'
# values are torchvision's (and tools/convert_torchvision.py writes them to conversion.json).
NORMALIZATION_STATS = {'imagenet': ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
                       'unit': ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))}


class PretrainedMismatchError(ValueError):
  """Pretrained weights that do not fit the model or the input pipeline as configured."""


def _as_path(path: str | epath.Path) -> epath.Path:
  """An absolute path (orbax wants one); URLs such as gs://... are kept as they are."""
  if '://' in str(path):
    return epath.Path(path)
  return epath.Path(path).expanduser().resolve()


def _variables_dir(path: str | epath.Path) -> epath.Path:
  """The orbax directory for `path`: either `path/variables` or `path` itself."""
  root = _as_path(path)
  if (root / VARIABLES_SUBDIR).exists():
    return root / VARIABLES_SUBDIR
  if (root / '_METADATA').exists() or (root / '_CHECKPOINT_METADATA').exists():
    return root
  raise FileNotFoundError(
      f'No pretrained variables at {path!r} (expected an orbax checkpoint in '
      f'{path}/{VARIABLES_SUBDIR}). Create one with tools/convert_torchvision.py '
      '--arch=... --weights=... --output_dir=... and pass that output_dir.')


def _to_numpy_tree(variables: Mapping[str, Any]) -> dict[str, Any]:
  """Keeps the two collections, as plain nested dicts of numpy arrays."""
  out = {}
  for name in _COLLECTIONS:
    tree = variables.get(name, {})
    out[name] = jax.tree.map(np.asarray, dict(tree)) if tree else {}
  return out


def save_pretrained(variables: Mapping[str, Any], output_dir: str, *,
                    info: Mapping[str, Any] | None = None, overwrite: bool = False) -> str:
  """Writes variables (and an optional description) as a pretrained directory.

  Args:
    variables: {'params': ..., 'batch_stats': ...} (batch_stats may be absent or empty).
    output_dir: directory to create; `init_from` should name it.
    info: JSON-serialisable description written to conversion.json.
    overwrite: replace an existing checkpoint in output_dir instead of refusing.

  Returns:
    The absolute output directory.

  Raises:
    FileExistsError: output_dir already holds variables and overwrite is False.
  """
  root = _as_path(output_dir)
  target = root / VARIABLES_SUBDIR
  if target.exists() and not overwrite:
    raise FileExistsError(f'{target} already exists; choose another output directory or allow '
                          'overwriting (--overwrite).')
  root.mkdir(parents=True, exist_ok=True)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(target, _to_numpy_tree(variables), force=overwrite)
  checkpointer.wait_until_finished()
  checkpointer.close()
  if info is not None:
    (root / INFO_FILENAME).write_text(json.dumps(dict(info), indent=2, sort_keys=True) + '\n')
  return str(root)


def load_pretrained(path: str) -> dict[str, Any]:
  """Restores pretrained variables written by `save_pretrained` / `save_converted`.

  Args:
    path: the pretrained directory (or its `variables` orbax directory).

  Returns:
    {'params': nested dict of numpy arrays, 'batch_stats': nested dict (empty for nets without
    BatchNorm)}.

  Raises:
    FileNotFoundError: nothing restorable at path.
  """
  checkpointer = ocp.StandardCheckpointer()
  restored = checkpointer.restore(_variables_dir(path))
  checkpointer.close()
  return {name: restored.get(name) or {} for name in _COLLECTIONS}


def load_info(path: str) -> dict[str, Any]:
  """The conversion.json description of a pretrained directory, or {} when there is none."""
  info_path = _as_path(path) / INFO_FILENAME
  return json.loads(info_path.read_text()) if info_path.exists() else {}


def _flatten(variables: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
  flat = {}
  for collection, tree in variables.items():
    if tree:
      for path, leaf in traverse_util.flatten_dict(dict(tree)).items():
        flat[(collection,) + tuple(path)] = leaf
  return flat


def merge_pretrained(variables: Mapping[str, Any],
                     pretrained: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
  """Takes every leaf that exists in both trees with the same shape from `pretrained`.

  Leaves whose path is missing from `pretrained`, or whose shape differs (a re-sized classifier
  head, a first convolution with another channel count), keep their fresh initialisation and are
  listed; whether such a partial load is acceptable is the caller's decision
  (`model.init_from_partial`). Pretrained values are cast to the fresh leaf's dtype.

  Args:
    variables: freshly initialised {'params': ..., 'batch_stats': ...} of the model to train.
    pretrained: as returned by `load_pretrained`.

  Returns:
    (merged variables with the structure of `variables`, one line per leaf not loaded, e.g.
    "params/head/kernel: shape (2048, 101) but pretrained (2048, 1000)" or
    "params/head_1/bias: not in pretrained").

  Raises:
    ValueError: no leaf matches (the pretrained weights are for another architecture).
  """
  fresh = _flatten(variables)
  old = _flatten(pretrained)
  merged, kept_fresh = {}, []
  for path, leaf in fresh.items():
    name = '/'.join(path)
    if path not in old:
      kept_fresh.append(f'{name}: not in pretrained')
      merged[path] = leaf
    elif tuple(np.shape(old[path])) != tuple(leaf.shape):
      kept_fresh.append(f'{name}: shape {tuple(leaf.shape)} but pretrained '
                        f'{tuple(np.shape(old[path]))}')
      merged[path] = leaf
    else:
      merged[path] = jnp.asarray(old[path], dtype=leaf.dtype)
  if len(kept_fresh) == len(fresh):
    example_old = ', '.join(f'{"/".join(p)} {tuple(np.shape(v))}' for p, v in list(old.items())[:3])
    example_new = ', '.join(f'{"/".join(p)} {tuple(v.shape)}' for p, v in list(fresh.items())[:3])
    raise PretrainedMismatchError(
        'No pretrained variable matches the model (same path and shape): the pretrained weights '
        f'are for another architecture. Pretrained has e.g. [{example_old}]; the model has '
        f'[{example_new}]. Convert weights for this model with tools/convert_torchvision.py.')
  out: dict[str, Any] = {}
  for collection in variables:
    subtree = {p[1:]: v for p, v in merged.items() if p[0] == collection}
    out[collection] = traverse_util.unflatten_dict(subtree) if subtree else {}
  return out, kept_fresh


def partial_load_message(init_from: str, not_loaded: list[str], *, allowed: bool) -> str:
  """The text for a partial load: every leaf not loaded and why, and what to do.

  Args:
    init_from: the pretrained directory.
    not_loaded: `merge_pretrained`'s list.
    allowed: True for the warning of an allowed load (`model.init_from_partial`), False for the
      error.
  """
  lines = '\n'.join(f'  {line}' for line in not_loaded)
  head = (f'{len(not_loaded)} variable(s) of the model were not loaded from {init_from} and '
          f'{"train" if allowed else "would train"} from their fresh initialisation:\n{lines}')
  if allowed:
    return head + '\n(allowed by model.init_from_partial=True)'
  return (head + '\nConvert weights that fit this model (tools/convert_torchvision.py '
          '--num_classes=... --input_channels=...), or set --config.model.init_from_partial=True '
          'to train these variables from scratch.')


def _normalization_of(preprocessing: Mapping[str, Any]) -> str | None:
  """The `data.normalization` name whose mean/std equal conversion.json's, or None."""
  try:
    mean = np.asarray(preprocessing['rgb_mean'], np.float64)
    std = np.asarray(preprocessing['rgb_std'], np.float64)
    lo, hi = preprocessing.get('rgb_range', (0.0, 1.0))
  except (KeyError, TypeError, ValueError):
    return None
  if (lo, hi) != (0.0, 1.0) or mean.shape != (3,) or std.shape != (3,):
    return None
  for name, (m, s) in NORMALIZATION_STATS.items():
    if np.allclose(mean, m, atol=1e-6) and np.allclose(std, s, atol=1e-6):
      return name
  return None


def check_normalization(info: Mapping[str, Any], normalization: str, init_from: str) -> None:
  """Raises when conversion.json's input preprocessing differs from `data.normalization`.

  Args:
    info: `load_info(init_from)` ({} when there is no conversion.json: nothing to compare).
    normalization: the config's `data.normalization` ('imagenet' or 'unit').
    init_from: the pretrained directory, for the message.

  Raises:
    PretrainedMismatchError: naming both normalisations.
  """
  preprocessing = info.get('preprocessing')
  if not preprocessing:
    return
  expected = _normalization_of(preprocessing)
  if expected != normalization:
    described = expected or f'mean/std {json.dumps(preprocessing)}'
    raise PretrainedMismatchError(
        f'{init_from}/{INFO_FILENAME} says its inputs were normalised as {described!r}, but '
        f'data.normalization is {normalization!r}: set --config.data.normalization='
        f'{expected or "<matching>"} (the weights see wrongly scaled inputs otherwise).')
