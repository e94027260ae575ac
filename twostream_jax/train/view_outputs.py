"""The jitted eval step as evaluation sees it: a host batch in, per-view results on the host out.

Host batches become global arrays (`sharding`), the eval step makes the V views of each test
position on the device and runs the network, and the data-sharded index, label and mask come back
to every process, repeated per view, so each process sees every result.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import jax
import numpy as np

from twostream_jax.train import device_views
from twostream_jax.train import sharding


def videos_per_batch(views_per_batch: int, views_per_video: int, mesh, num_videos: int = 0) -> int:
  """Videos per global eval batch: about `views_per_batch` views, a multiple of the devices.

  Args:
    views_per_batch: the view budget (`config.train.eval_batch_size`).
    views_per_video: K x C, the views the device makes of each video.
    mesh: the data mesh (its device count; a multiple of the process count).
    num_videos: the videos to evaluate (0: unknown); a batch holds no more than these, rounded up
      to the devices, so that a short split is not padded to the whole budget.
  """
  n = mesh.devices.size
  videos = max(n, views_per_batch // views_per_video // n * n)
  if num_videos > 0:
    videos = min(videos, -(-num_videos // n) * n)
  return videos


def device_batches(host_batches: Iterable[dict[str, np.ndarray]], mesh) -> Iterator[dict[str, Any]]:
  """Host batches as global arrays, two transferred ahead."""
  return sharding.prefetch_to_device(host_batches, mesh)


def view_predictor(state: Any, eval_fn: Callable, mesh, head: int = 0) -> Callable:
  """`predict(batch) -> (video_index [n], label [n], mask [n], logits float64 [n, classes])`.

  Rows are views, ordered by video, then test position, then crop; `n` counts padding views too
  (mask 0).

  Args:
    state: the (replicated) train state.
    eval_fn: jitted `(state, batch, head=) -> logits [B * V, K]` (`steps.make_jitted_steps`).
    mesh: the data mesh.
    head: the head that scores (multi-task runs: the data set's index).
  """
  def predict(batch):
    views = device_views.num_views(batch) if device_views.has_device_views(batch) else 1
    logits = np.asarray(jax.device_get(eval_fn(state, batch, head=head)), np.float64)
    index, label, mask = (device_views.per_view(x, views) for x in sharding.to_host(
        tuple(batch[k] for k in ('video_index', 'label', 'mask')), mesh))
    return index, label, mask, logits
  return predict
