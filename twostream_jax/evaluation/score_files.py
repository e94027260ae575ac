"""Per-video score files: what one stream predicted for every video of one split.

The evaluation loop writes one file per (stream, split); fusion and the results table read them back.
A file is a plain `.npz` (no pickled objects: `np.load(path)` opens it anywhere) holding:

  video_ids     str   [V]     e.g. 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01', unique
  labels        int32 [V]     true class index
  logits        f32   [V, C]  per-video logits (the evaluation loop's per-view logits averaged)
  probs         f32   [V, C]  per-video averaged softmax (mean over views of softmax(view logits))
  class_names   str   [C]     class names in label order
  split, stream str   []      e.g. 'test1'; 'spatial', 'temporal', or e.g. 'svm(spatial+temporal)'
  num_views     int64 []      views averaged per video (25 frames x 10 crops in the paper; 0: unknown)
  train_split   str   []      the training split of the run that made the scores, e.g. 'train1'
                              ('' or absent: unknown); fusion fits only on that split's scores
  format_version int64 []     `FORMAT_VERSION` of the writer

Numpy only: no JAX, no TensorFlow. Design: docs/design_notes.md.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
import zipfile
from typing import Sequence

import numpy as np

FORMAT_VERSION = 1

_ARRAY_KEYS = ('video_ids', 'labels', 'logits', 'probs', 'class_names')
_SCALAR_KEYS = ('split', 'stream', 'num_views', 'format_version')
REQUIRED_KEYS = _ARRAY_KEYS + _SCALAR_KEYS
# Files written before it existed lack it (read as '': unknown).
_OPTIONAL_SCALAR_KEYS = ('train_split',)

# A per-video average of softmax vectors sums to 1 up to float32 rounding; a looser tolerance would
# let logits or unnormalised scores pass as probabilities.
_PROB_SUM_TOLERANCE = 1e-3


class ScoreFileError(ValueError):
  """A score file, or a `VideoScores`, that is malformed or does not match another one."""


# eq=False: a generated __eq__ would compare arrays elementwise and fail on `==` of the tuples.
@dataclasses.dataclass(eq=False)
class VideoScores:
  """One stream's per-video scores on one split.

  Arrays are converted and checked on construction, so a `VideoScores` that exists is consistent.

  Attributes:
    video_ids: V unique video ids.
    labels: int32 [V] true class indices in [0, C).
    logits: float32 [V, C] per-video logits.
    probs: float32 [V, C] per-video averaged softmax scores (rows sum to 1).
    class_names: C class names in label order.
    split: split the videos come from, e.g. 'test1'.
    stream: what produced the scores, e.g. 'spatial' or 'temporal'.
    num_views: views averaged per video (0: unknown or mixed).
    train_split: the training split of the run that made the scores ('' unknown); `fusion` fits
      only on scores of that split (or of its held-out part).
  """
  video_ids: list[str]
  labels: np.ndarray
  logits: np.ndarray
  probs: np.ndarray
  class_names: list[str]
  split: str
  stream: str
  num_views: int
  train_split: str = ''

  def __post_init__(self) -> None:
    self.video_ids = [str(v) for v in self.video_ids]
    self.class_names = [str(c) for c in self.class_names]
    self.split = str(self.split)
    self.stream = str(self.stream)
    self.num_views = int(self.num_views)
    self.train_split = str(self.train_split)
    self.labels = np.asarray(self.labels)
    self.logits = np.asarray(self.logits, dtype=np.float32)
    self.probs = np.asarray(self.probs, dtype=np.float32)
    self._validate()

  @property
  def name(self) -> str:
    """'stream/split', used in messages."""
    return f'{self.stream}/{self.split}'

  @property
  def num_videos(self) -> int:
    return len(self.video_ids)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def _validate(self) -> None:
    where = f'scores {self.name!r}'
    num_videos, num_classes = len(self.video_ids), len(self.class_names)
    if num_classes == 0:
      raise ScoreFileError(f'{where}: class_names is empty.')
    if len(set(self.class_names)) != num_classes:
      raise ScoreFileError(f'{where}: class_names has duplicates; each class must be named once.')
    if len(set(self.video_ids)) != num_videos:
      seen: set[str] = set()
      duplicate = next(v for v in self.video_ids if v in seen or seen.add(v))
      raise ScoreFileError(f'{where}: video id {duplicate!r} appears more than once; '
                           'average the views of a video before writing its scores.')
    if self.labels.shape != (num_videos,):
      raise ScoreFileError(f'{where}: labels has shape {self.labels.shape}, expected ({num_videos},) '
                           f'for {num_videos} video ids.')
    if num_videos and not np.issubdtype(self.labels.dtype, np.integer):
      raise ScoreFileError(f'{where}: labels must be integers, got dtype {self.labels.dtype}.')
    self.labels = self.labels.astype(np.int32)
    for key in ('logits', 'probs'):
      array = getattr(self, key)
      if array.shape != (num_videos, num_classes):
        raise ScoreFileError(f'{where}: {key} has shape {array.shape}, expected '
                             f'({num_videos}, {num_classes}) for {num_videos} videos and '
                             f'{num_classes} class names.')
      if not np.all(np.isfinite(array)):
        raise ScoreFileError(f'{where}: {key} holds NaN or infinite values.')
    if num_videos:
      if self.labels.min() < 0 or self.labels.max() >= num_classes:
        raise ScoreFileError(f'{where}: labels must lie in [0, {num_classes}), found '
                             f'{self.labels.min()}..{self.labels.max()}.')
      sums = self.probs.sum(axis=1, dtype=np.float64)
      worst = int(np.argmax(np.abs(sums - 1.0)))
      if self.probs.min() < 0 or abs(sums[worst] - 1.0) > _PROB_SUM_TOLERANCE:
        raise ScoreFileError(
            f'{where}: probs must be per-video averaged softmax scores (non-negative, rows summing '
            f'to 1); the row of {self.video_ids[worst]!r} sums to {sums[worst]:.6f}. Were logits '
            'saved as probs?')
    if self.num_views < 0:
      raise ScoreFileError(f'{where}: num_views must be >= 0 (0: unknown), got {self.num_views}.')

  def reordered(self, video_ids: Sequence[str]) -> 'VideoScores':
    """These scores with the videos in the order of `video_ids` (a permutation of `self.video_ids`)."""
    index = {v: i for i, v in enumerate(self.video_ids)}
    missing = [v for v in video_ids if v not in index]
    if missing or len(video_ids) != len(index):
      raise ScoreFileError(f'scores {self.name!r}: cannot reorder, the given ids are not a permutation '
                           f'of its video ids (first unknown id: {missing[:1]}).')
    order = np.array([index[v] for v in video_ids], dtype=np.int64)
    return dataclasses.replace(self, video_ids=list(video_ids), labels=self.labels[order],
                               logits=self.logits[order], probs=self.probs[order])


def save_scores(path: str, scores: VideoScores) -> None:
  """Writes `scores` to `path` (.npz), atomically (`save_npz_atomically`)."""
  save_npz_atomically(path, {
      'video_ids': np.array(scores.video_ids, dtype=np.str_),
      'labels': scores.labels.astype(np.int32),
      'logits': scores.logits.astype(np.float32),
      'probs': scores.probs.astype(np.float32),
      'class_names': np.array(scores.class_names, dtype=np.str_),
      'split': np.array(scores.split, dtype=np.str_),
      'stream': np.array(scores.stream, dtype=np.str_),
      'num_views': np.array(scores.num_views, dtype=np.int64),
      'train_split': np.array(scores.train_split, dtype=np.str_),
      'format_version': np.array(FORMAT_VERSION, dtype=np.int64),
  })


def save_npz_atomically(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Writes `arrays` to `path` (.npz) so that readers never see a half-written file.

  The file is written next to `path` under a temporary name and renamed over it, so an interrupted
  write leaves either the old file or none. Parent folders are created.
  """
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  # A unique name in the same folder (os.replace is atomic only within a file system), opened with
  # open() rather than mkstemp so that the file gets the usual umask permissions, not 0600.
  tmp_path = os.path.join(folder, f'.{os.path.basename(path)}.{uuid.uuid4().hex}.tmp')
  try:
    with open(tmp_path, 'xb') as f:
      # A file object, not a name: np.savez would append '.npz' to a name that lacks it.
      np.savez(f, **arrays)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise


def load_scores(path: str) -> VideoScores:
  """Reads a score file written by `save_scores`.

  Raises:
    FileNotFoundError: `path` does not exist.
    ScoreFileError: the file is not an .npz score file, lacks keys, or its arrays disagree in shape.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Score file {path!r} does not exist; write it with the evaluation job '
                            '(or twostream_jax.evaluation.score_files.save_scores) first.')
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
    raise ScoreFileError(f'{path!r} is not a readable .npz score file ({e}).') from e
  missing = [key for key in REQUIRED_KEYS if key not in arrays]
  if missing:
    raise ScoreFileError(f'{path!r} is not a score file: keys {missing} are missing (it has '
                         f'{sorted(arrays)}). Write score files with score_files.save_scores.')
  version = int(arrays['format_version'])
  if version > FORMAT_VERSION:
    raise ScoreFileError(f'{path!r} has score format version {version}, newer than this code '
                         f'({FORMAT_VERSION}); update twostream_jax.')
  for key in _SCALAR_KEYS + _OPTIONAL_SCALAR_KEYS:
    if key in arrays and arrays[key].shape != ():
      raise ScoreFileError(f'{path!r}: {key!r} must be a scalar, got shape {arrays[key].shape}.')
  for key in ('video_ids', 'class_names'):
    if arrays[key].ndim != 1:
      raise ScoreFileError(f'{path!r}: {key!r} must be a list, got shape {arrays[key].shape}.')
  try:
    return VideoScores(
        video_ids=arrays['video_ids'].tolist(), labels=arrays['labels'], logits=arrays['logits'],
        probs=arrays['probs'], class_names=arrays['class_names'].tolist(),
        split=arrays['split'].item(), stream=arrays['stream'].item(),
        num_views=int(arrays['num_views']),
        train_split=arrays['train_split'].item() if 'train_split' in arrays else '')
  except ScoreFileError as e:
    raise ScoreFileError(f'{path!r}: {e}') from e


def check_aligned(a: VideoScores, b: VideoScores) -> VideoScores:
  """Checks that two score files cover the same videos with the same labels and classes.

  Videos in a different order are not an error: `b` is returned reordered to `a`'s order, so that
  row i of both is the same video.

  Args:
    a: the reference scores.
    b: scores to compare with `a` (e.g. the other stream on the same split).

  Returns:
    `b` with its videos in `a`'s order (`b` itself when already in that order).

  Raises:
    ScoreFileError: naming the first mismatch: different class lists, different splits, a video id
      present in one and not the other, or a video whose label differs.
  """
  if a.class_names != b.class_names:
    if len(a.class_names) != len(b.class_names):
      detail = f'{len(a.class_names)} classes vs {len(b.class_names)}'
    else:
      i = next(i for i, (x, y) in enumerate(zip(a.class_names, b.class_names)) if x != y)
      detail = f'class {i} is {a.class_names[i]!r} vs {b.class_names[i]!r}'
    raise ScoreFileError(f'Scores {a.name!r} and {b.name!r} use different class lists ({detail}); '
                         'score both streams with the same dataset metadata.')
  if a.split != b.split:
    raise ScoreFileError(f'Scores {a.name!r} and {b.name!r} come from different splits '
                         f'({a.split!r} vs {b.split!r}); streams are fused video by video on one split.')
  b_ids = set(b.video_ids)
  missing_in_b = next((v for v in a.video_ids if v not in b_ids), None)
  if missing_in_b is not None:
    raise ScoreFileError(f'Video {missing_in_b!r} is in {a.name!r} but not in {b.name!r} '
                         f'({a.num_videos} vs {b.num_videos} videos); score every video of the split '
                         'with both streams.')
  if len(b_ids) != a.num_videos:
    a_ids = set(a.video_ids)
    missing_in_a = next(v for v in b.video_ids if v not in a_ids)
    raise ScoreFileError(f'Video {missing_in_a!r} is in {b.name!r} but not in {a.name!r} '
                         f'({b.num_videos} vs {a.num_videos} videos); score every video of the split '
                         'with both streams.')
  aligned = b if b.video_ids == a.video_ids else b.reordered(a.video_ids)
  differ = np.nonzero(a.labels != aligned.labels)[0]
  if differ.size:
    i = int(differ[0])
    raise ScoreFileError(
        f'Video {a.video_ids[i]!r} has label {a.labels[i]} ({a.class_names[a.labels[i]]!r}) in '
        f'{a.name!r} but {aligned.labels[i]} ({a.class_names[aligned.labels[i]]!r}) in {b.name!r} '
        f'({differ.size} videos differ); the score files were written from different labels.')
  return aligned


def align_all(scores: Sequence[VideoScores]) -> list[VideoScores]:
  """`check_aligned` against the first: every score file in the first one's video order."""
  if not scores:
    raise ScoreFileError('No score files given.')
  return [scores[0]] + [check_aligned(scores[0], s) for s in scores[1:]]
