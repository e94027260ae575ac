"""One trained stream, restored from its workdir, scoring the test views of videos read from files.

`StreamPredictor(workdir)` reads the run's config and data set (`data.workdir_metadata`, written when
training started), builds its network, restores the latest checkpoint and jits its eval step
(`train.steps.make_jitted_steps`), with no records folder needed. `score(images)` takes one video's
uint8 frames `[K, H, W, 3]` (spatial) or quantised flow stacks `[K, H, W, 2L]` (temporal) and
hands them to the jitted eval step with the test protocol's C crop boxes and flips
(`data.protocol_views`), which makes the
K x C views on the device (`train.device_views`: crops, flips, dequantisation, mean flow subtraction,
normalisation) exactly as evaluation does on the records' positions; fixed-size batches (one
compilation per frame size); the views' softmax scores are averaged as `evaluate.score_split` does.
No TensorFlow: this module runs on accelerator hosts without it.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from twostream_jax.data import batch_keys
from twostream_jax.data import dataset_metadata
from twostream_jax.data import protocol_views
from twostream_jax.data import record_schema
from twostream_jax.data import workdir_metadata
from twostream_jax.evaluation import stream_scores
from twostream_jax.train import checkpointing
from twostream_jax.train import restore
from twostream_jax.train import sharding
from twostream_jax.train import steps as train_steps
from twostream_jax.train import task_heads


class PredictorError(ValueError):
  """A workdir (or a pair of them) that cannot be used for prediction; the message says why."""


class StreamPredictor:
  """A restored stream (module docstring).

  Attributes:
    workdir: the run's folder.
    config: the run's config.
    metadata: the records' metadata of the data set whose head predictions use (`chosen_dataset`).
    head: that head's index (0 but for a multi-task run).
    name: 'spatial', 'temporal' or `eval.stream_name`.
    modality: 'rgb' or 'flow'.
    step: the restored checkpoint's step.
    batch_size: views per network call (about; whole test positions of C views each).
  """

  def __init__(self, workdir: str, *, batch_size: int = 0, mesh: Any = None, dataset: str = ''):
    """Restores the latest checkpoint of `workdir`.

    Args:
      workdir: a training run's folder.
      dataset: the data set (name or index) whose head scores, for a multi-task run
        (`chosen_dataset`; '': the run's `eval.dataset`).
      batch_size: views per network call (0: the run's `train.eval_batch_size`); rounded up to a
        multiple of the devices.
      mesh: the data mesh (default: all devices).

    Raises:
      PredictorError: no workdir metadata, no such data set, or no checkpoint.
    """
    self.workdir = workdir
    run = read_run(workdir)
    self.head, self.metadata = chosen_dataset(run, dataset)
    self.config = run.config
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
    self.name = stream_scores.stream_name(d.modality, self.config.eval.stream_name)
    self.modality = d.modality
    self.num_views, self.num_crops = int(d.test_num_frames), int(d.test_num_crops)
    self.num_flow_fields = int(d.num_flow_fields) if self.modality == 'flow' else 0
    state, _ = restore.init_state(self.config, run.data_spec(), self.mesh, use_init_from=False)
    state, _ = checkpointer.restore(state)
    checkpointer.close()
    self.state, self.step = state, int(jax.device_get(state.step))
    _, self._eval_fn = train_steps.make_jitted_steps(self.config, self.mesh, state)
    devices = self.mesh.devices.size
    batch = batch_size or int(self.config.train.eval_batch_size)
    self.batch_size = -(-batch // devices) * devices

  @property
  def class_names(self) -> list[str]:
    return list(self.metadata.class_names)

  def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-video scores of one video.

    The K test positions go to the device as uint8 (flow as planes `[2L, H, W]`) with the C test
    boxes (corners only when every crop is S x S) and flips of each, and the jitted eval step makes
    the K x C views there (`train.device_views`), as evaluation does.

    Args:
      images: uint8 `[K, H, W, 3]` RGB frames (rgb) or `[K, H, W, 2L]` quantised flow stacks (flow).

    Returns:
      (probs float32 `[C]`: the views' softmax scores averaged, logits float32 `[C]`: the views'
      logits averaged), as `evaluate.score_split` computes them.
    """
    num, height, width, channels = images.shape
    size = int(self.config.data.crop_size)
    boxes, flips = protocol_views.crop_boxes(height, width, size, self.num_crops)
    if min(height, width) >= size:
      boxes = boxes[:, :2]  # every crop is S x S: its corner is enough (a slice), as evaluation
    if self.modality == 'flow':
      # The device transform takes flow as planes [2L, H, W], as the pipeline decodes it.
      images = np.ascontiguousarray(np.moveaxis(images, -1, 1))
    # Whole positions of C views, a multiple of the devices (position batches: the video's frames
    # or stacks come decoded, so there is no bank to share; the eval pipeline imports TensorFlow).
    devices = self.mesh.devices.size
    per_batch = max(devices, self.batch_size // self.num_crops // devices * devices)
    pad_box = np.zeros(boxes.shape[1], np.int32)
    pad_box[2:] = 1
    logits = []
    for start in range(0, num, per_batch):
      chunk = images[start:start + per_batch]
      # Fixed shapes (padding positions: zero images, corner boxes): one compilation per frame size.
      batch = {batch_keys.IMAGES: np.zeros((per_batch,) + images.shape[1:], np.uint8),
               batch_keys.BOXES: np.tile(pad_box, (per_batch, self.num_crops, 1)),
               batch_keys.FLIPS: np.zeros((per_batch, self.num_crops), bool)}
      batch[batch_keys.IMAGES][:len(chunk)] = chunk
      batch[batch_keys.BOXES][:len(chunk)] = boxes
      batch[batch_keys.FLIPS][:len(chunk)] = flips
      if self.modality == 'flow':
        batch[batch_keys.FLOW_STEP] = np.full(
            per_batch, record_schema.flow_quantisation_step(self.metadata.flow_bound_px), np.float32)
      out = self._eval_fn(self.state, sharding.global_batch(batch, self.mesh), head=self.head)
      logits.append(np.asarray(jax.device_get(out), np.float64)[:len(chunk) * self.num_crops])
    logits = np.concatenate(logits)
    return (stream_scores.softmax(logits).mean(axis=0).astype(np.float32),
            logits.mean(axis=0).astype(np.float32))


def read_run(workdir: str) -> workdir_metadata.WorkdirMetadata:
  """A run's recorded config and data sets; PredictorError when the workdir has none."""
  try:
    return workdir_metadata.load(workdir)
  except dataset_metadata.DatasetError as e:
    raise PredictorError(str(e)) from e


def chosen_dataset(run: workdir_metadata.WorkdirMetadata,
                   dataset: str = '') -> tuple[int, dataset_metadata.DatasetMetadata]:
  """(head index, its data set's metadata) that `dataset` names (a name or an index, as config
  `eval.dataset`; '': the run's own `eval.dataset`, whose default is the first data set).

  Raises:
    PredictorError: `dataset` names no data set of the run (the message lists them).
  """
  choice = str(dataset).strip() or str(run.config.eval.get('dataset', '') or '')
  try:
    index = task_heads.eval_dataset_index([m.name for m in run.datasets], choice)
  except ValueError as e:
    raise PredictorError(f'--dataset: {e}'.replace('eval.dataset=', '')) from e
  return index, run.datasets[index]


def check_same_classes(workdirs: list[str], dataset: str = '') -> list[str]:
  """The class names the runs of all `workdirs` share (cheap: read before anything is restored).

  Args:
    workdirs: the runs' folders.
    dataset: the data set whose head each run predicts with (`chosen_dataset`).

  Raises:
    PredictorError: a workdir without metadata, or two runs trained on data sets with different
      class lists (naming the first difference).
  """
  chosen = [chosen_dataset(read_run(w), dataset)[1] for w in workdirs]
  first = chosen[0]
  for workdir, other in zip(workdirs[1:], chosen[1:]):
    a, b = first.class_names, other.class_names
    if a != b:
      where = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))
      detail = (f'class {where} is {a[where]!r} vs {b[where]!r}' if where < min(len(a), len(b))
                else f'{len(a)} vs {len(b)} classes')
      raise PredictorError(
          f'the runs in {workdirs[0]} and {workdir} were trained on data sets with different class '
          f'lists ({len(a)} and {len(b)} classes; {detail}); their scores cannot be fused. Use '
          'two runs trained on the same records.')
  return list(first.class_names)
