"""An evaluation's scores so far, on disk, so that a killed evaluation resumes where it stopped.

`score_split` keeps, per video of the split, the sums of its views' logits and softmax scores;
`PartialScores` writes the sums of the videos that received all their views to
`<split dir>/scores.partial.npz` every `every_seconds` (atomically: a temporary file renamed over
it), and a rerun of the same command reads them back and scores only the other videos. Sums are
kept in float64 and a video's views are averaged only at the end, so the resumed `scores.npz`
holds the same arrays as an uninterrupted run's. The file is removed once `scores.npz` is written.

The file carries a key (JSON: checkpoint step, split, data set, stream, views, videos, a digest of
the config): a file written for another checkpoint, protocol or config is ignored (and replaced).
A plain `.npz`: `key` str, `video_ids` str [V], `scored` bool [V], `labels` int64 [V],
`logit_sums`, `prob_sums` float64 [V, C]. Numpy only: no JAX, no TensorFlow.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from typing import Sequence

import numpy as np

from twostream_jax.evaluation import score_files

FILENAME = 'scores.partial.npz'


def describe_key_difference(old: str, new: str) -> str:
  """'step: 3 -> 6; views: ...' for two keys (JSON objects), or the raw keys if unreadable."""
  try:
    a, b = json.loads(old), json.loads(new)
  except ValueError:
    return f'{old!r} -> {new!r}'
  return '; '.join(f'{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in sorted(set(a) | set(b))
                   if a.get(k) != b.get(k))


class PartialScores:
  """The per-video sums of one split's evaluation, read from and written to `path`.

  Attributes:
    scored: bool [V], videos whose sums are complete (all their views).
    labels: int64 [V] (-1: not scored).
    logit_sums, prob_sums: float64 [V, C], sums over a video's views.
    resumed_from: videos read back from an earlier run's file.
    ignored: why an existing file was not used ('' when none was found or it was used).
  """

  def __init__(self, path: str, key: str, video_ids: Sequence[str], num_classes: int, *,
               every_seconds: float = 60.0, write: bool = True):
    """Reads `path` if it exists and carries `key`.

    Args:
      path: the partial file (`<split dir>/scores.partial.npz`).
      key: what the scores belong to (module docstring): JSON, compared as a string.
      video_ids: the split's videos, in score order.
      num_classes: C.
      every_seconds: write at most this often (0: after every batch).
      write: False reads only (every process but the first of several).

    Raises:
      ValueError: a negative `every_seconds`.
    """
    if every_seconds < 0:
      raise ValueError(f'eval.partial_scores_every_seconds must be >= 0 (0: after every batch), '
                       f'got {every_seconds}')
    self.path, self.key, self.every_seconds, self.write = path, key, float(every_seconds), write
    self.video_ids = [str(v) for v in video_ids]
    num_videos = len(self.video_ids)
    self.scored = np.zeros(num_videos, bool)
    self.labels = np.full(num_videos, -1, np.int64)
    self.logit_sums = np.zeros((num_videos, num_classes), np.float64)
    self.prob_sums = np.zeros((num_videos, num_classes), np.float64)
    self.ignored = ''
    self._last_save = time.monotonic()
    self._read()
    self.resumed_from = int(self.scored.sum())

  def _read(self) -> None:
    if not os.path.isfile(self.path):
      return
    try:
      with np.load(self.path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
      self.ignored = f'unreadable ({e})'
      return
    key = str(arrays.get('key', np.array('')))
    if key != self.key:
      self.ignored = f'written for another checkpoint or protocol ({describe_key_difference(key, self.key)})'
      return
    if (arrays['video_ids'].tolist() != self.video_ids
        or arrays['logit_sums'].shape != self.logit_sums.shape):
      self.ignored = 'written for another list of videos or classes'
      return
    self.scored[:] = arrays['scored']
    self.labels[:] = arrays['labels']
    self.logit_sums[:] = arrays['logit_sums']
    self.prob_sums[:] = arrays['prob_sums']

  def scored_indices(self) -> np.ndarray:
    """int64 [n]: the videos (indices into `video_ids`) whose scores are complete."""
    return np.flatnonzero(self.scored).astype(np.int64)

  def update(self, complete: np.ndarray, labels: np.ndarray, logit_sums: np.ndarray,
             prob_sums: np.ndarray, force: bool = False) -> bool:
    """Takes the sums of the videos marked `complete` and writes the file when it is time.

    Args:
      complete: bool [V], videos that received all their views.
      labels, logit_sums, prob_sums: the evaluation's arrays ([V], [V, C], [V, C]).
      force: write now, whatever the time since the last write.

    Returns:
      Whether the file was written.
    """
    new = complete & ~self.scored
    if not new.any():
      return False
    self.scored |= new
    self.labels[new] = labels[new]
    self.logit_sums[new] = logit_sums[new]
    self.prob_sums[new] = prob_sums[new]
    if not self.write or (not force and time.monotonic() - self._last_save < self.every_seconds):
      return False
    self._save()
    self._last_save = time.monotonic()
    return True

  def _save(self) -> None:
    score_files.save_npz_atomically(self.path, {
        'key': np.array(self.key, dtype=np.str_),
        'video_ids': np.array(self.video_ids, dtype=np.str_), 'scored': self.scored,
        'labels': self.labels, 'logit_sums': self.logit_sums, 'prob_sums': self.prob_sums})

  def remove(self) -> None:
    """Deletes the file (once the final scores are written)."""
    if self.write and os.path.exists(self.path):
      os.remove(self.path)
