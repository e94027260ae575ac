"""`fusion_run.run_fusion` on small synthetic score files whose fusions are worked out by hand."""

import dataclasses
import os

import numpy as np
import pytest

from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import score_files
from twostream_jax.evaluation.score_files import VideoScores

CLASSES = ['Archery', 'Basketball', 'CliffDiving']


def _write_streams(folder, split, num_videos, seed):
  """Writes spatial and temporal score files of one split; returns their paths.

  Spatial always names the other class for classes 0 and 1 (a consistent confusion) and is right
  for class 2 (0.8 on its pick, 0.1 elsewhere); temporal is right but unsure (0.4 vs 0.3). Worked
  out by hand (w: spatial's weight):
    spatial alone: only class 2 right -> top-1 = mean class accuracy = 1/3.
    temporal alone: all right.
    average (w = 0.5): classes 0/1 get 0.55 on the wrong class vs 0.25 -> 1/3.
    fitted_average: a class-0 video is right iff 0.4 - 0.3 w > 0.3 + 0.5 w, i.e. w < 0.125: on the
      0.05 grid w in {0, 0.05, 0.10} get every training video right; 0.10 is closest to equal
      weights -> weights (0.10, 0.90), all test videos right.
    svm: the stacked scores are a fixed vector per class -> all right.
  """
  labels = np.tile(np.arange(3), num_videos // 3)
  np.random.default_rng(seed).shuffle(labels)
  rows = np.arange(num_videos)
  spatial = np.full((num_videos, 3), 0.1, np.float32)
  spatial[rows, np.array([1, 0, 2])[labels]] = 0.8
  temporal = np.full((num_videos, 3), 0.3, np.float32)
  temporal[rows, labels] = 0.4
  paths = []
  for stream, probs in (('spatial', spatial), ('temporal', temporal)):
    scores = VideoScores(video_ids=[f'{split}/v{i:03d}' for i in range(num_videos)], labels=labels,
                         logits=np.log(probs), probs=probs, class_names=CLASSES, split=split,
                         stream=stream, num_views=250, train_split='train1')
    paths.append(os.path.join(folder, f'{stream}_{split}.npz'))
    score_files.save_scores(paths[-1], scores)
  return paths


@pytest.fixture
def score_paths(tmp_path):
  return (_write_streams(str(tmp_path), 'train1', 60, seed=0),
          _write_streams(str(tmp_path), 'test1', 30, seed=1))


def test_run_fusion_with_given_weights_and_confusion_matrices(score_paths, tmp_path):
  train, test = score_paths
  out = str(tmp_path / 'fusion')
  result = fusion_run.run_fusion(train, test, out, ['average'], weights=[1.0, 3.0],
                           confusion_matrices=True)
  # Weights (0.25, 0.75): a class-0 video scores 0.25 * 0.1 + 0.75 * 0.4 = 0.325 on its class
  # against 0.25 * 0.8 + 0.75 * 0.3 = 0.425 on the other -> still only class 2 right.
  average = result['rows'][-1]
  assert average['weights'] == pytest.approx([0.25, 0.75])
  assert average['top1'] == pytest.approx(1 / 3)
  assert sorted(os.listdir(out)) == [
      'confusion_average.png', 'confusion_spatial.png', 'confusion_temporal.png',
      'fused_average.npz', 'fusion_average.npz', 'results.json', 'results.md']
  assert result['results_md'] == os.path.join(out, 'results.md')


def test_run_fusion_refuses_mismatched_files_before_writing(score_paths, tmp_path):
  train, test = score_paths
  full = score_files.load_scores(test[1])
  short = dataclasses.replace(full, video_ids=full.video_ids[:-1], labels=full.labels[:-1],
                              logits=full.logits[:-1], probs=full.probs[:-1])
  short_path = str(tmp_path / 'temporal_test1_short.npz')
  score_files.save_scores(short_path, short)
  out = str(tmp_path / 'fusion')
  with pytest.raises(score_files.ScoreFileError,
                     match="'test1/v029' is in 'spatial/test1' but not in 'temporal/test1'"):
    fusion_run.run_fusion(train, [test[0], short_path], out, ['average'])
  with pytest.raises(fusion.FusionError, match='3 fusion weights given for 2 streams'):
    fusion_run.run_fusion(train, test, out, ['average'], weights=[1.0, 2.0, 3.0])
  with pytest.raises(fusion.FusionError, match='Unknown or no fusion methods'):
    fusion_run.run_fusion(train, test, out, ['vote'])
  with pytest.raises(FileNotFoundError, match='missing.npz'):
    fusion_run.run_fusion(train, [test[0], str(tmp_path / 'missing.npz')], out, ['average'])
  assert not os.path.exists(out)
