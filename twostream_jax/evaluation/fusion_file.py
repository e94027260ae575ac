"""A fitted fusion on disk, so that new videos are fused as `python -m twostream_jax.fuse` fitted.

`fuse` writes one `fusion_<method>.npz` per method next to its results (a plain .npz, no pickles):
  format_version  int64 []      `FUSION_FILE_VERSION`
  method          str   []      'average', 'fitted_average' or 'svm'
  streams         str   [S]     stream names in weight / feature order, e.g. ['spatial', 'temporal']
  class_names     str   [C]     the classes it was fitted on
  weights         f32   [S]     averaging weights summing to 1 (averaging methods)
  svm_weights     f32   [S*C, C], svm_bias f32 [C]   the linear SVM (svm)
`python -m twostream_jax.predict --fusion FILE` applies it (`FittedFusion.apply`); without a file,
predict averages with equal weights (`equal_average`).

JAX and numpy only; no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from twostream_jax.evaluation.fusion import FusionError
from twostream_jax.evaluation.fusion import FusionResult
from twostream_jax.evaluation.fusion import SvmParams
from twostream_jax.evaluation.fusion import svm_features
from twostream_jax.evaluation.fusion import svm_scores
from twostream_jax.evaluation.fusion import weighted_average

FUSION_FILE_VERSION = 1


@dataclasses.dataclass
class FittedFusion:
  """A fusion ready to apply to new videos' scores: what `fuse` fitted, or plain averaging.

  Attributes:
    method: one of `METHODS`.
    streams: stream names, in the order of the weights / SVM features (e.g. ['spatial', 'temporal']).
    class_names: C class names the fusion was fitted on.
    weights: float32 [S] averaging weights summing to 1 (averaging methods), else None.
    svm_params: the SVM ('svm'), else None.
  """
  method: str
  streams: list[str]
  class_names: list[str]
  weights: np.ndarray | None = None
  svm_params: SvmParams | None = None

  def apply(self, stream_probs: np.ndarray) -> np.ndarray:
    """Fused scores float32 [V, C] of stream_probs [S, V, C] (streams in `self.streams` order).

    The SVM's decision values go through a softmax, as in `fuse`'s score files: it keeps their
    ranking and gives rows summing to 1.
    """
    stream_probs = jnp.asarray(stream_probs, jnp.float32)
    if self.svm_params is not None:
      return np.asarray(jax.nn.softmax(svm_scores(self.svm_params, svm_features(stream_probs)), -1))
    return np.asarray(weighted_average(stream_probs, jnp.asarray(self.weights)))


def equal_average(streams: Sequence[str], class_names: Sequence[str]) -> FittedFusion:
  """The paper's fusion by averaging, with equal weights."""
  return FittedFusion('average', list(streams), list(class_names),
                      weights=np.full(len(streams), 1.0 / len(streams), np.float32))


def fitted_fusion(result: FusionResult, streams: Sequence[str],
                  class_names: Sequence[str]) -> FittedFusion:
  """What `result` fitted, ready to save and apply."""
  params = None
  if result.svm_params is not None:
    params = SvmParams(*(np.asarray(p, np.float32) for p in result.svm_params))
  weights = None if result.weights is None else np.asarray(result.weights, np.float32)
  return FittedFusion(result.method, list(streams), list(class_names), weights, params)


def save_fitted_fusion(path: str, fitted: FittedFusion) -> None:
  """Writes a plain .npz (no pickles): method, streams, class_names, and weights or SVM arrays."""
  arrays = {'format_version': np.int64(FUSION_FILE_VERSION), 'method': np.str_(fitted.method),
            'streams': np.asarray(fitted.streams, dtype=np.str_),
            'class_names': np.asarray(fitted.class_names, dtype=np.str_)}
  if fitted.weights is not None:
    arrays['weights'] = np.asarray(fitted.weights, np.float32)
  if fitted.svm_params is not None:
    arrays['svm_weights'] = np.asarray(fitted.svm_params.weights, np.float32)
    arrays['svm_bias'] = np.asarray(fitted.svm_params.bias, np.float32)
  tmp = path + '.tmp.npz'
  np.savez(tmp, **arrays)
  os.replace(tmp, path)


def load_fitted_fusion(path: str) -> FittedFusion:
  """Reads what `save_fitted_fusion` wrote.

  Raises:
    FileNotFoundError: no such file.
    FusionError: not a fusion file, another version, or inconsistent arrays.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'fusion file {path!r} does not exist: `python -m twostream_jax.fuse` '
                            'writes fusion_<method>.npz into its --output_dir')
  try:
    with np.load(path, allow_pickle=False) as data:
      content = {k: data[k] for k in data.files}
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise FusionError(f'{path} is not a fusion file written by twostream_jax.fuse: {e}') from e
  if 'method' not in content or int(content.get('format_version', -1)) != FUSION_FILE_VERSION:
    raise FusionError(f'{path} is not a fusion file of version {FUSION_FILE_VERSION} (written by '
                      'twostream_jax.fuse as fusion_<method>.npz)')
  method = str(content['method'])
  streams = [str(s) for s in content['streams']]
  class_names = [str(c) for c in content['class_names']]
  weights, params = content.get('weights'), None
  if 'svm_weights' in content:
    params = SvmParams(content['svm_weights'], content['svm_bias'])
    if params.weights.shape != (len(streams) * len(class_names), len(class_names)):
      raise FusionError(f'{path}: SVM weights {params.weights.shape} do not fit {len(streams)} '
                        f'streams x {len(class_names)} classes')
  elif weights is None or weights.shape != (len(streams),):
    raise FusionError(f'{path}: method {method!r} needs one weight per stream ({len(streams)})')
  return FittedFusion(method, streams, class_names, weights, params)
