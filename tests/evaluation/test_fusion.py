"""Fusion maths on hand-made scores, the SVM on toy problems, and the refusals of `fuse`."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_inputs
from twostream_jax.evaluation.fusion import FusionError
from twostream_jax.evaluation.score_files import ScoreFileError, VideoScores

# Every SVM in this module is fitted on [60, 6] features with 3 classes, so `_fit_svm` compiles once.
NUM_TRAIN, NUM_CLASSES = 60, 3


def _video_scores(probs, labels, stream, split, prefix=None, num_views=250, train_split=''):
  probs = np.asarray(probs, np.float32)
  prefix = prefix or split
  return VideoScores(video_ids=[f'{prefix}/v{i:03d}' for i in range(len(labels))],
                     labels=np.asarray(labels), logits=np.log(np.maximum(probs, 1e-6)),
                     probs=probs, class_names=['a', 'b', 'c'][:probs.shape[1]], split=split,
                     stream=stream, num_views=num_views, train_split=train_split)


def test_weighted_average_is_the_normalised_weighted_sum():
  probs = np.random.default_rng(0).dirichlet(np.ones(5), size=(3, 7)).astype(np.float32)  # [3, 7, 5]
  weights = np.array([1.0, 2.0, 0.5], np.float32)
  expected = (1.0 * probs[0] + 2.0 * probs[1] + 0.5 * probs[2]) / 3.5
  fused = fusion.weighted_average(jnp.asarray(probs), jnp.asarray(weights))
  np.testing.assert_allclose(np.asarray(fused), expected, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(fused).sum(axis=1), 1.0, atol=1e-6)


def test_check_weights_refuses_unusable_weights():
  np.testing.assert_array_equal(fusion.check_weights([1, 1.5], 2), [1.0, 1.5])
  with pytest.raises(FusionError, match='3 fusion weights given for 2 streams'):
    fusion.check_weights([1, 1, 1], 2)
  with pytest.raises(FusionError, match='non-negative'):
    fusion.check_weights([1, -1], 2)
  with pytest.raises(FusionError, match='not all zero'):
    fusion.check_weights([0, 0], 2)


def test_simplex_grid():
  grid = fusion.simplex_grid(3, 0.05)
  assert grid.shape == (math.comb(20 + 2, 2), 3)  # stars and bars: 20 steps among 3 streams
  np.testing.assert_allclose(grid.sum(axis=1), 1.0, atol=1e-6)
  assert len({tuple(np.round(row * 20).astype(int)) for row in grid}) == len(grid)
  np.testing.assert_allclose(fusion.simplex_grid(2, 0.25)[:, 0], [0, 0.25, 0.5, 0.75, 1.0])
  with pytest.raises(FusionError, match='must divide 1'):
    fusion.simplex_grid(2, 0.3)


# Two streams A and B, two classes; w is A's weight. A video is right when the weighted margin of
# its class is positive:
#   v0 (label 0): A = [0.9, 0.1] (+0.8), B = [0.3, 0.7] (-0.4): 0.8 w > 0.4 (1 - w)  <=>  w > 1/3
#   v1 (label 1): A = [0.79, 0.21] (-0.58), B = [0.29, 0.71] (+0.42): w < 0.42
#   v2 (label 0): both right whatever w.
# Only w in (1/3, 0.42) gets all three right; on a 0.05 grid that is {0.35, 0.40}, and the tie
# between them goes to 0.40, the closer to equal weights.
HAND_A = [[0.9, 0.1], [0.79, 0.21], [0.6, 0.4]]
HAND_B = [[0.3, 0.7], [0.29, 0.71], [0.7, 0.3]]
HAND_LABELS = [0, 1, 0]


def test_search_weights_picks_the_best_weights_on_train():
  weights, correct = fusion.search_weights(np.array([HAND_A, HAND_B]), np.array(HAND_LABELS))
  np.testing.assert_allclose(weights, [0.40, 0.60], atol=1e-6)
  assert correct == 3
  # Equal weights (w = 0.5) get v1 wrong, so a search that ignored the scores would fail here.
  fused = 0.5 * np.array(HAND_A) + 0.5 * np.array(HAND_B)
  assert np.sum(np.argmax(fused, axis=1) == HAND_LABELS) == 2


def test_search_weights_ties_go_to_equal_weights_then_grid_order():
  # Three streams that each get every video right: every weight vector ties. The grid points closest
  # to (1/3, 1/3, 1/3) are the permutations of (0.30, 0.35, 0.35); the first in grid order (the
  # first stream's weight rises slowest) is (0.30, 0.35, 0.35).
  probs = np.array([[[0.8, 0.2], [0.3, 0.7]]] * 3)
  weights, correct = fusion.search_weights(probs, np.array([0, 1]))
  np.testing.assert_allclose(weights, [0.30, 0.35, 0.35], atol=1e-6)
  assert correct == 2


def test_svm_features_normalise_each_stream_then_concatenate():
  probs = np.array([[[0.6, 0.8], [0.5, 0.5]],     # stream 0: norms 1 and 1/sqrt(2)
                    [[1.0, 0.0], [0.0, 0.25]]])   # stream 1: norms 1 and 0.25
  features = np.asarray(fusion.svm_features(jnp.asarray(probs, jnp.float32)))
  s = 1 / math.sqrt(2)
  np.testing.assert_allclose(features, [[0.6, 0.8, 1.0, 0.0], [s, s, 0.0, 1.0]], rtol=1e-6)


def test_svm_objective_is_the_scaled_one_vs_rest_squared_hinge():
  # Two videos, two features, two classes; W = [[1, 0], [0, 2]], b = [0, -1], c = 0.5.
  params = fusion.SvmParams(weights=jnp.array([[1.0, 0.0], [0.0, 2.0]]), bias=jnp.array([0.0, -1.0]))
  features = jnp.array([[1.0, 0.0], [0.5, 1.0]])
  # Scores: video 0 [1, -1], video 1 [0.5, 1].
  # Video 0, label 0: class 0 (+1) margin 1 -> slack 0; class 1 (-1) margin 1 -> slack 0.
  # Video 1, label 0: class 0 (+1) margin 0.5 -> slack 0.5; class 1 (-1) margin -1 -> slack 2.
  # Objective: 0.5 * (1 + 4) / (0.5 * 2) + (0.5^2 + 2^2) / 2 = 2.5 + 2.125.
  value = fusion.svm_objective(params, features, jnp.array([0, 0]), 0.5)
  assert float(value) == pytest.approx(4.625)


def _blobs(rng, num_per_class):
  """Three Gaussian blobs in 6-D, 1.0 apart per axis on two axes, spread 0.15: linearly separable
  with overwhelming probability (a point would have to stray 3 spreads to cross)."""
  centres = np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0]], np.float32)
  labels = np.repeat(np.arange(3), num_per_class)
  features = centres[labels] + 0.15 * rng.normal(size=(labels.size, 6)).astype(np.float32)
  return features, labels


def test_svm_separates_a_separable_problem_and_generalises():
  rng = np.random.default_rng(0)
  train_x, train_y = _blobs(rng, NUM_TRAIN // 3)
  test_x, test_y = _blobs(rng, 200)
  params = fusion.fit_linear_svm(train_x, train_y, NUM_CLASSES, c=10.0, seed=0)
  assert params.weights.shape == (6, 3) and params.bias.shape == (3,)
  train_pred = np.argmax(np.asarray(fusion.svm_scores(params, train_x)), axis=1)
  np.testing.assert_array_equal(train_pred, train_y)
  test_pred = np.argmax(np.asarray(fusion.svm_scores(params, test_x)), axis=1)
  assert np.mean(test_pred == test_y) >= 0.97

  # L-BFGS reached the minimum: the gradient vanishes, and another start finds the same SVM.
  grad = jax.grad(fusion.svm_objective)(params, jnp.asarray(train_x), jnp.asarray(train_y), 10.0)
  assert float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in grad))) < 1e-3
  other = fusion.fit_linear_svm(train_x, train_y, NUM_CLASSES, c=10.0, seed=1)
  np.testing.assert_allclose(np.asarray(other.weights), np.asarray(params.weights), atol=1e-3)


def _swapped_streams(rng, num_videos, split):
  """Stream A always names the other class for classes 0 and 1 (a consistent confusion), and is
  right for class 2; stream B is right but unsure. Averaging cannot undo A's swap; a linear map on
  the stacked scores can."""
  labels = np.tile(np.arange(3), num_videos // 3)
  rng.shuffle(labels)
  swapped = np.array([1, 0, 2])[labels]
  a = np.full((num_videos, 3), 0.1)
  a[np.arange(num_videos), swapped] = 0.8
  b = np.full((num_videos, 3), 0.3)
  b[np.arange(num_videos), labels] = 0.4
  return (_video_scores(a, labels, 'spatial', split), _video_scores(b, labels, 'temporal', split))


def test_fuse_svm_learns_what_averaging_cannot():
  rng = np.random.default_rng(0)
  train = _swapped_streams(rng, NUM_TRAIN, 'train1')
  test = _swapped_streams(rng, 30, 'test1')
  svm = fusion.fuse(train, test, 'svm', svm_c=10.0)
  average = fusion.fuse(train, test, 'average')
  labels = test[0].labels
  assert svm.scores.stream == 'svm(spatial+temporal)' and svm.scores.split == 'test1'
  assert svm.scores.video_ids == test[0].video_ids and svm.scores.num_views == 250
  np.testing.assert_allclose(svm.scores.probs.sum(axis=1), 1.0, atol=1e-5)
  assert np.mean(np.argmax(svm.scores.probs, axis=1) == labels) == 1.0
  assert svm.train_top1 == 1.0
  # Averaging: for classes 0 and 1, A's 0.8 on the wrong class beats B's 0.4 (0.55 vs 0.25), so
  # only class-2 videos, a third of them, are right.
  assert np.mean(np.argmax(average.scores.probs, axis=1) == labels) == pytest.approx(1 / 3)


def test_fuse_average_with_given_and_fitted_weights():
  train = (_video_scores(HAND_A, HAND_LABELS, 'spatial', 'train1'),
           _video_scores(HAND_B, HAND_LABELS, 'temporal', 'train1'))
  test_a, test_b = np.array([[0.2, 0.8], [0.7, 0.3]]), np.array([[0.6, 0.4], [0.1, 0.9]])
  test = (_video_scores(test_a, [1, 1], 'spatial', 'test1'),
          _video_scores(test_b, [1, 1], 'temporal', 'test1'))
  given = fusion.fuse(train, test, 'average', weights=[1.0, 3.0])
  expected = (1.0 * test_a + 3.0 * test_b) / 4.0
  np.testing.assert_allclose(given.scores.probs, expected, rtol=1e-6)
  np.testing.assert_allclose(np.exp(given.scores.logits), expected, rtol=1e-5)
  np.testing.assert_allclose(given.weights, [0.25, 0.75])
  fitted = fusion.fuse(train, test, 'fitted_average')
  np.testing.assert_allclose(fitted.weights, [0.40, 0.60], atol=1e-6)  # as in the search test
  np.testing.assert_allclose(fitted.scores.probs, 0.4 * test_a + 0.6 * test_b, rtol=1e-6)
  assert fitted.train_top1 == 1.0


def test_fuse_refuses_to_fit_on_test_scores_or_pair_wrong_files():
  rng = np.random.default_rng(0)
  train = _swapped_streams(rng, 6, 'train1')
  test = _swapped_streams(rng, 6, 'test1')
  fusion_inputs.check_train_test(train, test)  # the right call passes

  on_test = _swapped_streams(rng, 6, 'test1')
  with pytest.raises(FusionError, match="both come from split 'test1'.*never fitted on the test"):
    fusion.fuse(on_test, test, 'svm')

  # Renamed split, same videos: caught by the ids.
  leaked = tuple(_video_scores(s.probs, s.labels, s.stream, 'train1', prefix='test1') for s in test)
  with pytest.raises(FusionError, match="'test1/v000' is in both the training scores"):
    fusion.fuse(leaked, test, 'fitted_average')

  with pytest.raises(FusionError, match="'spatial' in the training list but 'temporal'"):
    fusion.fuse(train, test[::-1], 'average')
  with pytest.raises(FusionError, match='at least two streams'):
    fusion.fuse(train[:1], test[:1], 'average')
  with pytest.raises(FusionError, match='only "average" takes weights'):
    fusion.fuse(train, test, 'svm', weights=[1, 1])
  with pytest.raises(FusionError, match='Unknown fusion method'):
    fusion.fuse(train, test, 'max')
  short = _video_scores(train[1].probs[:5], train[1].labels[:5], 'temporal', 'train1')
  with pytest.raises(ScoreFileError, match="'train1/v005' is in 'spatial/train1' but not in"):
    fusion.fuse((train[0], short), test, 'average')


def _recorded(scores, split, train_split):
  """The same scores as a run trained on `train_split` wrote them for `split`."""
  return tuple(_video_scores(s.probs, s.labels, s.stream, split, prefix=split,
                             train_split=train_split) for s in scores)


def test_fitting_refuses_scores_not_of_their_runs_training_split():
  rng = np.random.default_rng(1)
  train = _recorded(_swapped_streams(rng, 6, 'train1'), 'train1', 'train1')
  test = _recorded(_swapped_streams(rng, 6, 'test1'), 'test1', 'train1')
  fusion_inputs.check_train_test(train, test)
  # The lists the wrong way round: the split recorded in the file is refused, by name.
  with pytest.raises(FusionError, match="'spatial/test1' are of split 'test1', which is not the "
                     "training split 'train1' of the run.*swapped"):
    fusion.fuse(test, train, 'svm')
  # train2 of a run trained on train1 holds test1 videos: not a training split of that run.
  other = _recorded(_swapped_streams(rng, 6, 'train2'), 'train2', 'train1')
  with pytest.raises(FusionError, match="split 'train2', which is not the training split 'train1'"):
    fusion.fuse(other, test, 'average')
  # The held-out part of the training split is fine to fit on.
  fusion_inputs.check_train_test(_recorded(train, 'heldout', 'train1'), test)
  # Files that do not record the run's training split: the split's own name decides.
  unknown_test = _recorded(test, 'test1', '')
  with pytest.raises(FusionError, match="split 'test1', which is not a training split"):
    fusion.fuse(unknown_test, _recorded(train, 'train1', ''), 'fitted_average')
  # Test scores of the run's own training split are refused too.
  with pytest.raises(FusionError, match="'spatial/train1' are of split 'train1', the training split"):
    fusion_inputs.check_train_test(_recorded(test, 'heldout', 'train1'), train)
