"""Score files: round trip, atomic writes, clear refusals, alignment of two streams."""

import dataclasses
import os

import numpy as np
import pytest

from twostream_jax.evaluation import score_files
from twostream_jax.evaluation.score_files import ScoreFileError, VideoScores

CLASSES = ['Archery', 'Basketball', 'CliffDiving']


def _scores(ids=('v0', 'v1', 'v2', 'v3'), labels=(0, 1, 2, 1), stream='spatial', split='test1',
            seed=0) -> VideoScores:
  logits = np.random.default_rng(seed).normal(size=(len(ids), len(CLASSES))).astype(np.float32)
  probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
  return VideoScores(video_ids=list(ids), labels=np.array(labels), logits=logits, probs=probs,
                     class_names=CLASSES, split=split, stream=stream, num_views=250)


def test_round_trip_keeps_every_field(tmp_path):
  scores = _scores()
  path = str(tmp_path / 'sub' / 'scores_test1')  # no .npz suffix: the name must be kept as given
  score_files.save_scores(path, scores)
  assert os.listdir(tmp_path / 'sub') == ['scores_test1']  # no temporary file left behind
  loaded = score_files.load_scores(path)
  assert loaded.video_ids == scores.video_ids
  assert loaded.class_names == CLASSES
  assert (loaded.split, loaded.stream, loaded.num_views) == ('test1', 'spatial', 250)
  assert loaded.labels.dtype == np.int32 and loaded.probs.dtype == np.float32
  np.testing.assert_array_equal(loaded.labels, [0, 1, 2, 1])
  np.testing.assert_array_equal(loaded.logits, scores.logits)
  np.testing.assert_array_equal(loaded.probs, scores.probs)
  # Plain arrays, no pickles: any numpy can read the file.
  with np.load(path, allow_pickle=False) as data:
    assert data['video_ids'].tolist() == ['v0', 'v1', 'v2', 'v3']
    arrays = {k: data[k] for k in data.files}
  assert loaded.train_split == ''
  # The run's training split is kept; a file written before it was recorded reads as unknown.
  score_files.save_scores(path, dataclasses.replace(scores, train_split='train1'))
  assert score_files.load_scores(path).train_split == 'train1'
  del arrays['train_split']
  np.savez(str(tmp_path / 'old.npz'), **arrays)
  assert score_files.load_scores(str(tmp_path / 'old.npz')).train_split == ''


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
  path = str(tmp_path / 'scores.npz')
  score_files.save_scores(path, _scores(seed=0))

  def broken_savez(f, **arrays):
    f.write(b'partial')
    raise OSError('disk full')

  monkeypatch.setattr(np, 'savez', broken_savez)
  with pytest.raises(OSError, match='disk full'):
    score_files.save_scores(path, _scores(seed=1))
  monkeypatch.undo()
  assert os.listdir(tmp_path) == ['scores.npz']
  np.testing.assert_array_equal(score_files.load_scores(path).logits, _scores(seed=0).logits)


def test_load_refuses_missing_file_wrong_keys_and_bad_shapes(tmp_path):
  with pytest.raises(FileNotFoundError, match='nowhere.npz'):
    score_files.load_scores(str(tmp_path / 'nowhere.npz'))

  not_npz = tmp_path / 'notes.npz'
  not_npz.write_text('hello')
  with pytest.raises(ScoreFileError, match='not a readable .npz'):
    score_files.load_scores(str(not_npz))

  wrong_keys = str(tmp_path / 'wrong_keys.npz')
  np.savez(wrong_keys, logits=np.zeros((2, 3)), labels=np.zeros(2))
  with pytest.raises(ScoreFileError, match=r"'video_ids'.*missing"):
    score_files.load_scores(wrong_keys)

  good = str(tmp_path / 'good.npz')
  score_files.save_scores(good, _scores())
  with np.load(good) as data:
    arrays = dict(data)
  arrays['probs'] = np.full((4, 4), 0.25, np.float32)  # one class too many
  bad = str(tmp_path / 'bad_shape.npz')
  np.savez(bad, **arrays)
  with pytest.raises(ScoreFileError, match=r'probs has shape \(4, 4\), expected \(4, 3\)'):
    score_files.load_scores(bad)


def test_construction_refuses_inconsistent_scores():
  good = _scores()
  with pytest.raises(ScoreFileError, match="'v1' appears more than once"):
    dataclasses.replace(good, video_ids=['v0', 'v1', 'v2', 'v1'])
  with pytest.raises(ScoreFileError, match=r'labels must lie in \[0, 3\)'):
    dataclasses.replace(good, labels=np.array([0, 1, 3, 1]))
  with pytest.raises(ScoreFileError, match='labels has shape'):
    dataclasses.replace(good, labels=np.array([0, 1, 2]))
  with pytest.raises(ScoreFileError, match='Were logits saved as probs'):
    dataclasses.replace(good, probs=good.logits)


def test_check_aligned_accepts_same_videos_and_reorders_them():
  a = _scores(stream='spatial', seed=0)
  b = _scores(stream='temporal', seed=1)
  assert score_files.check_aligned(a, b) is b

  order = [2, 0, 3, 1]
  shuffled = VideoScores(video_ids=[b.video_ids[i] for i in order], labels=b.labels[order],
                         logits=b.logits[order], probs=b.probs[order], class_names=CLASSES,
                         split='test1', stream='temporal', num_views=250)
  aligned = score_files.check_aligned(a, shuffled)
  assert aligned.video_ids == a.video_ids
  np.testing.assert_array_equal(aligned.probs, b.probs)
  np.testing.assert_array_equal(aligned.labels, a.labels)


def test_check_aligned_names_the_first_mismatch():
  a = _scores(stream='spatial')
  with pytest.raises(ScoreFileError, match="'v2' is in 'spatial/test1' but not in 'temporal/test1'"):
    score_files.check_aligned(a, _scores(ids=('v0', 'v1', 'v9', 'v3'), stream='temporal'))
  with pytest.raises(ScoreFileError, match="'v4' is in 'temporal/test1' but not in 'spatial/test1'"):
    score_files.check_aligned(a, _scores(ids=('v0', 'v1', 'v2', 'v3', 'v4'),
                                         labels=(0, 1, 2, 1, 0), stream='temporal'))
  with pytest.raises(ScoreFileError, match=r"'v1' has label 1 \('Basketball'\).* but 2"):
    score_files.check_aligned(a, _scores(labels=(0, 2, 2, 0), stream='temporal'))
  renamed = _scores(stream='temporal')
  renamed = dataclasses.replace(renamed, class_names=['Archery', 'Bowling', 'CliffDiving'])
  with pytest.raises(ScoreFileError, match="different class lists.*'Basketball' vs 'Bowling'"):
    score_files.check_aligned(a, renamed)
  with pytest.raises(ScoreFileError, match='different splits'):
    score_files.check_aligned(a, _scores(stream='temporal', split='test2'))
