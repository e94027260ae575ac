"""Logits of the real (unpadded) examples of an evaluation dataset, batch by batch, on every process.

The loop that clip-level validation (`train.loop`) and the paper's protocol (`evaluation.evaluate`)
share: host batches become global arrays, the jitted eval step runs, and the data-sharded index,
label and mask come back to every process (`sharding.to_host`), so each process sees every result.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import jax
import numpy as np

from twostream_jax.train import sharding


def real_logits(state: Any, eval_fn: Callable, dataset: Any,
                mesh) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Yields (video_index int `[n]`, label int `[n]`, logits float64 `[n, K]`) per batch, padding dropped.

  Args:
    state: the (replicated) train state.
    eval_fn: jitted `(state, inputs [B, ...]) -> logits [B, K]`, replicated output.
    dataset: a tf.data dataset of this process's part of each global batch, with `inputs`,
      `video_index`, `label` and `mask` (1 real, 0 padding).
    mesh: the data mesh.
  """
  for local in dataset.as_numpy_iterator():
    batch = sharding.global_batch(local, mesh)
    logits = np.asarray(jax.device_get(eval_fn(state, batch['inputs'])), np.float64)
    index, label, mask = sharding.to_host(
        tuple(batch[k] for k in ('video_index', 'label', 'mask')), mesh)
    real = mask > 0
    yield index[real], label[real], logits[real]
