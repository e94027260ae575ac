"""What fusion refuses to fit on: score lists that would fit on test scores or pair the wrong files.

The split recorded in each score file decides, not the argument order: training scores must be of
a training split of the run that made them (`check_training_split`). Numpy only, no TensorFlow.
"""

from __future__ import annotations

from typing import Sequence

from twostream_jax.evaluation import score_files
from twostream_jax.evaluation.score_files import VideoScores

# `data.dataset_metadata.HELDOUT_SPLIT`: training-split videos kept out of the training stream.
HELDOUT_SPLIT = 'heldout'


class FusionError(ValueError):
  """Score files that cannot be fused as asked (e.g. fitting on test scores)."""


def check_training_split(scores: VideoScores) -> None:
  """Refuses to fit on scores whose own split is not a training split of the run that made them.

  The split recorded in the file decides, not the argument order: with the run's training split
  recorded (`train_split`), the scores must be of that split or of its held-out part; without it
  (files written before it was recorded), of a split named 'train<K>' or 'heldout'.

  Raises:
    FusionError: naming the scores' split (and the run's training split when known).
  """
  if scores.split == HELDOUT_SPLIT or (scores.train_split and scores.split == scores.train_split):
    return
  if scores.train_split:
    raise FusionError(f'The training scores {scores.name!r} are of split {scores.split!r}, which is '
                      f'not the training split {scores.train_split!r} of the run that made them: '
                      'fusion must be fitted on the scores of the videos a stream trained on (were '
                      'the training and test score lists swapped?).')
  if not scores.split.startswith('train'):
    raise FusionError(f'The training scores {scores.name!r} are of split {scores.split!r}, which is '
                      "not a training split ('train<K>' or 'heldout'): fusion must not be fitted on "
                      'test scores (were the training and test score lists swapped?).')


def check_train_test(train: Sequence[VideoScores],
                     test: Sequence[VideoScores]) -> tuple[list[VideoScores], list[VideoScores]]:
  """Refuses train/test score lists that would fit on test scores or pair the wrong files.

  Args:
    train: one score file per stream on the training split.
    test: the same streams, in the same order, on the test split.

  Returns:
    (train, test), each aligned to its first file's video order.

  Raises:
    FusionError: fewer than two streams, different stream orders, train and test on the same split,
      training scores not of a training split of their run (`check_training_split`), test scores
      of their run's training split, a video id in both, or no videos.
    score_files.ScoreFileError: streams of one split that do not cover the same videos and labels.
  """
  if len(train) != len(test):
    raise FusionError(f'{len(train)} training score files but {len(test)} test score files; give one '
                      'of each per stream, in the same order.')
  if len(train) < 2:
    raise FusionError(f'Fusion needs the scores of at least two streams, got {len(train)}.')
  for i, (tr, te) in enumerate(zip(train, test)):
    if tr.stream != te.stream:
      raise FusionError(f'Score file {i} is stream {tr.stream!r} in the training list but '
                        f'{te.stream!r} in the test list; list the streams in the same order.')
    if tr.split == te.split:
      raise FusionError(f'Training and test scores of stream {tr.stream!r} both come from split '
                        f'{tr.split!r}: fusion must be fitted on training-split scores and evaluated '
                        'on test-split scores, never fitted on the test set.')
    check_training_split(tr)
    if te.train_split and te.split == te.train_split:
      raise FusionError(f'The test scores {te.name!r} are of split {te.split!r}, the training split '
                        'of the run that made them: evaluate fusion on a test split.')
  train = score_files.align_all(train)
  test = score_files.align_all(test)
  if train[0].num_videos == 0 or test[0].num_videos == 0:
    raise FusionError(f'The training scores ({train[0].num_videos} videos) and the test scores '
                      f'({test[0].num_videos} videos) must both hold videos.')
  if train[0].class_names != test[0].class_names:
    raise FusionError(f'The training scores {train[0].name!r} ({train[0].num_classes} classes) and '
                      f'the test scores {test[0].name!r} ({test[0].num_classes} classes) use '
                      'different class lists; score both splits with the same dataset metadata.')
  shared = set(train[0].video_ids).intersection(test[0].video_ids)
  if shared:
    first = next(v for v in test[0].video_ids if v in shared)
    raise FusionError(f'Video {first!r} is in both the training scores ({train[0].split!r}) and the '
                      f'test scores ({test[0].split!r}), {len(shared)} shared in all: fitting on them '
                      'would fit on test videos. Score the training and test splits separately.')
  return list(train), list(test)
