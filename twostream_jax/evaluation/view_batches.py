"""The eval batch loop: per-view results of a predict function, padding dropped."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np


def real_views(predict: Callable, batches: Iterable[Any]
               ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """Yields (video_index int `[n]`, label int `[n]`, logits float64 `[n, classes]`) per batch.

  Args:
    predict: `batch -> (video_index [m], label [m], mask [m], logits [m, classes])` per view, on
      the host (mask 0: a padding view).
    batches: the batches, as `predict` takes them.
  """
  for batch in batches:
    index, label, mask, logits = predict(batch)
    real = np.asarray(mask) > 0
    yield np.asarray(index)[real], np.asarray(label)[real], np.asarray(logits)[real]
