"""Logits of the real (unpadded) views of an evaluation dataset, batch by batch, on every process.

The loop that clip-level validation (`train.loop`) and the paper's protocol (`evaluation.evaluate`)
share: host batches become global arrays (transferred ahead, `sharding.prefetch_to_device`), the
jitted eval step makes the V crops of each test position on the device and runs the network, and
the data-sharded index, label and mask come back to every process (`sharding.to_host`), repeated
per view, so each process sees every result.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import jax
import numpy as np

from twostream_jax.data import input_pipeline
from twostream_jax.train import device_views
from twostream_jax.train import sharding


def videos_per_batch(views_per_batch: int, views_per_video: int, mesh) -> int:
  """Videos per global eval batch: about `views_per_batch` views, a multiple of the devices.

  Args:
    views_per_batch: the view budget (`config.train.eval_batch_size`).
    views_per_video: K x C, the views the device makes of each video.
    mesh: the data mesh (its device count; a multiple of the process count).
  """
  n = mesh.devices.size
  return max(n, views_per_batch // views_per_video // n * n)


def real_logits(state: Any, eval_fn: Callable, dataset: Any,
                mesh) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Yields (video_index int `[n]`, label int `[n]`, logits float64 `[n, classes]`) per batch,
  padding dropped.

  Rows are views, ordered by video, then test position, then crop.

  Args:
    state: the (replicated) train state.
    eval_fn: jitted `(state, batch) -> logits [B * V, K]` (`steps.make_jitted_steps`), replicated.
    dataset: a tf.data dataset of this process's part of each global batch (`input_pipeline.
      create_eval_dataset`), with `video_index`, `label` and `mask` (1 real, 0 padding) per video.
    mesh: the data mesh.
  """
  for batch in sharding.prefetch_to_device(input_pipeline.numpy_batches(dataset), mesh):
    views = device_views.num_views(batch) if device_views.has_device_views(batch) else 1
    logits = np.asarray(jax.device_get(eval_fn(state, batch)), np.float64)
    index, label, mask = (device_views.per_view(x, views) for x in sharding.to_host(
        tuple(batch[k] for k in ('video_index', 'label', 'mask')), mesh))
    real = mask > 0
    yield index[real], label[real], logits[real]
