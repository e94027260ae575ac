"""One trained stream, restored from its workdir, scoring the test views of videos read from files.

`StreamPredictor(workdir)` reads the run's config and data set (`data.workdir_metadata`, written when
training started), builds its network, restores the latest checkpoint and jits its eval step
(`train.steps.make_jitted_steps`), with no records folder needed. `score(images)` takes one video's
uint8 frames `[K, H, W, 3]` (spatial) or quantised flow stacks `[K, H, W, 2L]` (temporal), makes the
test protocol's K x C views exactly as evaluation does on the records (the same `data.video_ops`
crops, flips, dequantisation, mean flow subtraction and normalisation), runs them in fixed-size
batches (one compilation), and averages the views' softmax scores as `evaluate.score_split` does.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np

from twostream_jax.data import dataset_metadata as dm
from twostream_jax.data import workdir_metadata
from twostream_jax.train import checkpointing
from twostream_jax.train import sharding
from twostream_jax.train import state as state_lib
from twostream_jax.train import steps as train_steps


class PredictorError(ValueError):
  """A workdir (or a pair of them) that cannot be used for prediction; the message says why."""


def stream_name(config: ml_collections.ConfigDict) -> str:
  """'spatial' for RGB, 'temporal' for flow, unless `eval.stream_name` says otherwise."""
  if config.eval.stream_name:
    return config.eval.stream_name
  return 'spatial' if config.data.modality == 'rgb' else 'temporal'


def _softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


class _TfViews:
  """The test views of one video with `data.video_ops` (TensorFlow), one traced function per shape."""

  def __init__(self, config: ml_collections.ConfigDict, bound_px: float):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from twostream_jax.data import video_ops  # pylint: disable=g-import-not-at-top
    d = config.data
    crops, size, rgb = int(d.test_num_crops), int(d.crop_size), d.modality == 'rgb'
    channels = 3 if rgb else 2 * int(d.num_flow_fields)

    @tf.function(reduce_retracing=True)
    def views(images):
      boxes, flips = video_ops.test_crop_boxes(tf.shape(images)[1], tf.shape(images)[2], size,
                                               crops)

      def one(view):
        k, c = view // crops, view % crops
        if rgb:
          return video_ops.rgb_view(images[k], boxes[c], flips[c], size, d.normalization)
        return video_ops.flow_view(images[k], boxes[c], flips[c], size, bound_px,
                                   d.flow_mean_subtraction)

      return tf.map_fn(one, tf.range(tf.shape(images)[0] * crops),
                       fn_output_signature=tf.TensorSpec([size, size, channels], tf.float32))

    self._views = views

  def __call__(self, images: np.ndarray) -> np.ndarray:
    return self._views(images).numpy()


class StreamPredictor:
  """A restored stream (module docstring).

  Attributes:
    workdir: the run's folder.
    config: the run's config.
    metadata: the records' metadata of the run's first data set (the head predictions use).
    name: 'spatial', 'temporal' or `eval.stream_name`.
    modality: 'rgb' or 'flow'.
    step: the restored checkpoint's step.
    batch_size: views per network call.
  """

  def __init__(self, workdir: str, *, batch_size: int = 0, mesh: Any = None):
    """Restores the latest checkpoint of `workdir`.

    Args:
      workdir: a training run's folder.
      batch_size: views per network call (0: the run's `train.eval_batch_size`); rounded up to a
        multiple of the devices.
      mesh: the data mesh (default: all devices).

    Raises:
      PredictorError: no workdir metadata, or no checkpoint.
    """
    self.workdir = workdir
    run = read_run(workdir)
    self.config, self.metadata = run.config, run.dataset
    directory = os.path.join(workdir, checkpointing.CHECKPOINT_SUBDIR)
    # Checked before the Checkpointer, which would create the folder.
    if not os.path.isdir(directory) or not any(n.isdigit() for n in os.listdir(directory)):
      raise PredictorError(f'{workdir!r} holds no checkpoint (no {directory}/<step>): train it '
                           'first, or point at the --workdir of a trained run')
    checkpointer = checkpointing.Checkpointer(workdir, keep=self.config.train.keep_checkpoints,
                                              every_steps=0)
    if checkpointer.latest_step() is None:
      raise PredictorError(f'{workdir!r} holds no finished checkpoint under {directory}')
    self.mesh = mesh if mesh is not None else sharding.create_mesh()
    d = self.config.data
    self.name, self.modality = stream_name(self.config), d.modality
    self.num_views, self.num_crops = int(d.test_num_frames), int(d.test_num_crops)
    self.num_flow_fields = int(d.num_flow_fields) if self.modality == 'flow' else 0
    channels = 3 if self.modality == 'rgb' else 2 * self.num_flow_fields
    num_classes = tuple(m.num_classes for m in run.datasets)
    model = state_lib.build_model(self.config, num_classes[0] if len(num_classes) == 1 else num_classes)
    state = state_lib.create_train_state(
        self.config, model, (int(d.crop_size), int(d.crop_size), channels),
        jax.random.fold_in(jax.random.key(self.config.seed), 0), use_init_from=False)
    state, _ = checkpointer.restore(sharding.replicate(state, self.mesh))
    checkpointer.close()
    self.state, self.step = state, int(jax.device_get(state.step))
    _, self._eval_fn = train_steps.make_jitted_steps(self.config, self.mesh, state)
    devices = self.mesh.devices.size
    batch = batch_size or int(self.config.train.eval_batch_size)
    self.batch_size = -(-batch // devices) * devices
    self._views = _TfViews(self.config, self.metadata.flow_bound_px)

  @property
  def class_names(self) -> list[str]:
    return list(self.metadata.class_names)

  def views(self, images: np.ndarray) -> np.ndarray:
    """The K x C network inputs of one video, float32 `[K * C, S, S, c]`, frame-major."""
    return self._views(images)

  def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-video scores of one video.

    Args:
      images: uint8 `[K, H, W, 3]` RGB frames (rgb) or `[K, H, W, 2L]` quantised flow stacks (flow).

    Returns:
      (probs float32 `[C]`: the views' softmax scores averaged, logits float32 `[C]`: the views'
      logits averaged), as `evaluate.score_split` computes them.
    """
    views = self.views(images)
    logits = []
    for start in range(0, len(views), self.batch_size):
      chunk = views[start:start + self.batch_size]
      padded = np.zeros((self.batch_size,) + chunk.shape[1:], np.float32)
      padded[:len(chunk)] = chunk  # fixed shape: one compilation for every video
      batch = sharding.global_batch({'inputs': padded}, self.mesh)
      out = np.asarray(jax.device_get(self._eval_fn(self.state, batch['inputs'])), np.float64)
      logits.append(out[:len(chunk)])
    logits = np.concatenate(logits)
    return (_softmax(logits).mean(axis=0).astype(np.float32),
            logits.mean(axis=0).astype(np.float32))


def read_run(workdir: str) -> workdir_metadata.WorkdirMetadata:
  """A run's recorded config and data sets; PredictorError when the workdir has none."""
  try:
    return workdir_metadata.load(workdir)
  except dm.DatasetError as e:
    raise PredictorError(str(e)) from e


def check_same_classes(workdirs: list[str]) -> list[str]:
  """The class names the runs of all `workdirs` share (cheap: read before anything is restored).

  Raises:
    PredictorError: a workdir without metadata, or two runs trained on data sets with different
      class lists (naming the first difference).
  """
  runs = [read_run(w) for w in workdirs]
  first = runs[0]
  for workdir, other in zip(workdirs[1:], runs[1:]):
    a, b = first.dataset.class_names, other.dataset.class_names
    if a != b:
      where = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
      detail = (f'class {where} is {a[where]!r} vs {b[where]!r}' if where < min(len(a), len(b))
                else f'{len(a)} vs {len(b)} classes')
      raise PredictorError(
          f'the runs in {workdirs[0]} and {workdir} were trained on data sets with different class '
          f'lists ({len(a)} and {len(b)} classes; {detail}); their scores cannot be fused. Use '
          'two runs trained on the same records.')
  return list(first.dataset.class_names)
