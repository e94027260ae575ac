"""Late fusion of per-video stream scores: weighted averaging and the paper's linear SVM.

Both combine the per-video softmax scores of two or more streams (spatial, temporal, ...):
- weighted averaging, `sum_s w_s p_s / sum_s w_s`, with given weights (equal weights: the paper's
  fusion by averaging) or weights chosen on the training split's scores by `search_weights`;
- a one-vs-rest, L2-regularised, squared-hinge linear SVM (`c` as in liblinear / sklearn's
  LinearSVC) on each stream's probs L2-normalised per video and concatenated ([V, S*C]), fitted
  by full-batch L-BFGS.

`fuse(train, test, method)` is the API the command line uses: it fits on `train`, applies to
`test`, after `fusion_inputs.check_train_test` has refused inputs that would fit on test scores
(whatever the argument order) or pair the wrong files.

JAX and optax only; no TensorFlow. Objective, solver and tie rules: docs/design_notes.md.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from twostream_jax.evaluation import fusion_inputs
from twostream_jax.evaluation.score_files import VideoScores

METHODS = ('average', 'fitted_average', 'svm')
DEFAULT_WEIGHT_STEP = 0.05
DEFAULT_SVM_C = 1.0
DEFAULT_SVM_STEPS = 200
# L-BFGS stops moving once the gradient of the (c * V)-scaled objective is this small: float32
# cannot resolve it further, and a line search on a flat function only accumulates rounding.
_SVM_GRAD_TOLERANCE = 1e-6


# Raised by every check here and in `fusion_inputs` (defined there, which this module imports).
FusionError = fusion_inputs.FusionError


# ----------------------------------------------------------------------------- weighted averaging


@jax.jit
def weighted_average(stream_probs: jax.Array, weights: jax.Array) -> jax.Array:
  """Weighted average of the streams' per-video scores.

  Args:
    stream_probs: [S, V, C] per-video softmax scores of S streams.
    weights: [S] non-negative weights, not all zero (checked by `check_weights`, not here: a jitted
      function cannot raise on values).

  Returns:
    [V, C] `sum_s weights[s] * stream_probs[s] / sum_s weights[s]`: still probabilities.
  """
  weights = weights.astype(stream_probs.dtype)
  return jnp.einsum('s,svc->vc', weights / jnp.sum(weights), stream_probs)


def check_weights(weights: Sequence[float], num_streams: int) -> np.ndarray:
  """Weights a user gave, as float32 [S]; raises `FusionError` when they cannot be used."""
  weights = np.asarray(weights, dtype=np.float64).reshape(-1)
  if weights.size != num_streams:
    raise FusionError(f'{weights.size} fusion weights given for {num_streams} streams; give one '
                      'weight per score file, in the same order.')
  if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
    raise FusionError(f'Fusion weights must be non-negative and not all zero, got {weights.tolist()}.')
  return weights.astype(np.float32)


def simplex_grid(num_streams: int, step: float = DEFAULT_WEIGHT_STEP) -> np.ndarray:
  """All weight vectors with entries in {0, step, 2 step, ..., 1} that sum to 1.

  Args:
    num_streams: S >= 1.
    step: grid step; 1 / step must be an integer.

  Returns:
    float32 [G, S], G = binom(1/step + S - 1, S - 1), in lexicographic order: the first stream's
    weight rises slowest, row 0 is (0, ..., 0, 1) and the last row (1, 0, ..., 0).
  """
  divisions = round(1.0 / step)
  if step <= 0 or abs(divisions * step - 1.0) > 1e-9:
    raise FusionError(f'Weight grid step must divide 1 (e.g. 0.05, 0.1), got {step}.')
  # Stars and bars: S - 1 bar positions among divisions + S - 1 slots give the compositions.
  rows = []
  for bars in itertools.combinations(range(divisions + num_streams - 1), num_streams - 1):
    edges = (-1,) + bars + (divisions + num_streams - 1,)
    rows.append([edges[i + 1] - edges[i] - 1 for i in range(num_streams)])
  return np.asarray(rows, dtype=np.float32) / divisions


@jax.jit
def _grid_correct_counts(stream_probs: jax.Array, labels: jax.Array, grid: jax.Array) -> jax.Array:
  """int32 [G]: correct top-1 videos of the weighted average for each weight row of `grid` [G, S]."""

  def count(weights):
    fused = jnp.einsum('s,svc->vc', weights, stream_probs)
    return jnp.sum(jnp.argmax(fused, axis=-1) == labels, dtype=jnp.int32)

  # lax.map in batches, not vmap: [G, V, C] at once would need gigabytes for 4 streams on UCF101.
  return jax.lax.map(count, grid, batch_size=32)


def search_weights(stream_probs: np.ndarray, labels: np.ndarray,
                   step: float = DEFAULT_WEIGHT_STEP) -> tuple[np.ndarray, int]:
  """Weights on the simplex grid with the best top-1 accuracy on the given (training) scores.

  Args:
    stream_probs: [S, V, C] per-video softmax scores of S streams on the TRAINING split.
    labels: [V] true classes.
    step: grid step (see `simplex_grid`).

  Returns:
    (float32 [S] weights summing to 1, number of correct videos with them). Ties: the weights
    closest to equal weights, then the first in grid order (docs/design_notes.md).
  """
  stream_probs = jnp.asarray(stream_probs, dtype=jnp.float32)
  grid = simplex_grid(stream_probs.shape[0], step)
  counts = np.asarray(_grid_correct_counts(stream_probs, jnp.asarray(labels, jnp.int32),
                                           jnp.asarray(grid)))
  best = np.nonzero(counts == counts.max())[0]
  distance = np.linalg.norm(grid[best] - 1.0 / grid.shape[1], axis=1)
  # Compositions are exact multiples of `step`, so equal distances are equal up to rounding.
  chosen = best[np.nonzero(distance <= distance.min() + 1e-6)[0][0]]
  return grid[chosen], int(counts[chosen])


# ----------------------------------------------------------------------------------- linear SVM


class SvmParams(NamedTuple):
  """A multi-class linear SVM: scores = features @ weights + bias.

  Attributes:
    weights: [D, C].
    bias: [C].
  """
  weights: jax.Array
  bias: jax.Array


@jax.jit
def svm_features(stream_probs: jax.Array) -> jax.Array:
  """The paper's SVM input: each stream's probs L2-normalised per video, then concatenated.

  Args:
    stream_probs: [S, V, C].

  Returns:
    [V, S * C], stream s in columns [s * C, (s + 1) * C).
  """
  norms = jnp.linalg.norm(stream_probs, axis=-1, keepdims=True)
  normalised = stream_probs / jnp.maximum(norms, 1e-12)
  num_streams, num_videos, num_classes = stream_probs.shape
  return jnp.transpose(normalised, (1, 0, 2)).reshape(num_videos, num_streams * num_classes)


@jax.jit
def svm_scores(params: SvmParams, features: jax.Array) -> jax.Array:
  """Decision values [V, C] of the SVM on features [V, D]; the predicted class is the argmax."""
  return features @ params.weights + params.bias


def svm_objective(params: SvmParams, features: jax.Array, labels: jax.Array,
                  c: float | jax.Array) -> jax.Array:
  """The one-vs-rest squared-hinge SVM primal divided by c * V (docs/design_notes.md).

  Args:
    params: the SVM.
    features: [V, D].
    labels: int [V].
    c: the SVM's C (> 0): larger fits the training scores more closely.

  Returns:
    Scalar `0.5 ||W||^2 / (c V) + mean_i sum_k max(0, 1 - y_ik s_ik)^2`.
  """
  num_videos = features.shape[0]
  signs = 2.0 * jax.nn.one_hot(labels, params.bias.shape[0], dtype=features.dtype) - 1.0
  slack = jnp.maximum(0.0, 1.0 - signs * svm_scores(params, features))
  return (0.5 * jnp.sum(params.weights ** 2) / (c * num_videos)
          + jnp.sum(slack ** 2) / num_videos)


@functools.partial(jax.jit, static_argnames=('steps',))
def _fit_svm(features: jax.Array, labels: jax.Array, c: jax.Array, init: SvmParams,
             steps: int) -> tuple[SvmParams, jax.Array]:
  objective = functools.partial(svm_objective, features=features, labels=labels, c=c)
  optimizer = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry, _):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, new_state = optimizer.update(grad, state, params, value=value, grad=grad,
                                          value_fn=objective)
    new_params = optax.apply_updates(params, updates)
    # Freeze once converged (or if a step went non-finite): later steps cannot improve float32
    # precision and would only risk a degenerate line search.
    keep = (optax.tree.norm(grad) < _SVM_GRAD_TOLERANCE) | ~jnp.all(
        jnp.isfinite(new_params.weights))
    params, state = jax.tree.map(lambda old, new: jnp.where(keep, old, new),
                                 (params, state), (new_params, new_state))
    return (params, state), value

  (params, _), values = jax.lax.scan(step, (init, optimizer.init(init)), None, length=steps)
  return params, values


def fit_linear_svm(features: np.ndarray | jax.Array, labels: np.ndarray | jax.Array,
                   num_classes: int, *, c: float = DEFAULT_SVM_C, steps: int = DEFAULT_SVM_STEPS,
                   seed: int = 0) -> SvmParams:
  """Fits the one-vs-rest squared-hinge linear SVM by full-batch L-BFGS (docs/design_notes.md).

  Args:
    features: [V, D], e.g. `svm_features` of the TRAINING split's scores.
    labels: int [V] in [0, num_classes).
    num_classes: C.
    c: regularisation constant C > 0 (liblinear / sklearn LinearSVC meaning).
    steps: L-BFGS iterations (each with a line search); it stops moving once converged.
    seed: seeds a small random start. The objective has a unique minimiser in W, so the seed only
      matters when `steps` is too small to converge.

  Returns:
    SvmParams with weights [D, C] and bias [C].
  """
  if not c > 0:
    raise FusionError(f'The SVM constant C must be > 0, got {c}.')
  if steps < 1:
    raise FusionError(f'SVM steps must be >= 1, got {steps}.')
  features = jnp.asarray(features, dtype=jnp.float32)
  labels = jnp.asarray(labels, dtype=jnp.int32)
  if features.ndim != 2 or labels.shape != (features.shape[0],):
    raise FusionError(f'features must be [V, D] and labels [V], got {features.shape} and '
                      f'{labels.shape}.')
  init = SvmParams(
      weights=1e-3 * jax.random.normal(jax.random.key(seed), (features.shape[1], num_classes)),
      bias=jnp.zeros((num_classes,), jnp.float32))
  params, _ = _fit_svm(features, labels, jnp.float32(c), init, steps)
  return params


# ------------------------------------------------------------------------- fit on train, apply on test


@dataclasses.dataclass
class FusionResult:
  """What `fuse` fitted and produced.

  Attributes:
    method: one of `METHODS`.
    scores: the fused TEST scores; stream is e.g. 'svm(spatial+temporal)'.
    weights: [S] averaging weights (summing to 1) for the averaging methods, else None.
    svm_params: the SVM for 'svm', else None.
    train_top1: top-1 accuracy of the fusion on the training scores it was fitted on (optimistic:
      a check that the fit worked, not an estimate of test accuracy).
    description: a short human-readable account of the fit, for results tables.
  """
  method: str
  scores: VideoScores
  weights: np.ndarray | None
  svm_params: SvmParams | None
  train_top1: float
  description: str


def _stack_probs(scores: Sequence[VideoScores]) -> jax.Array:
  return jnp.asarray(np.stack([s.probs for s in scores]))


def _top1(scores: jax.Array, labels: np.ndarray) -> float:
  return float(np.mean(np.argmax(np.asarray(scores), axis=1) == labels)) if len(labels) else 0.0


def fuse(train: Sequence[VideoScores], test: Sequence[VideoScores], method: str, *,
         weights: Sequence[float] | None = None, svm_c: float = DEFAULT_SVM_C,
         svm_steps: int = DEFAULT_SVM_STEPS, weight_step: float = DEFAULT_WEIGHT_STEP,
         seed: int = 0) -> FusionResult:
  """Fits a fusion on the training scores and applies it to the test scores.

  Args:
    train: one `VideoScores` per stream on the TRAINING split.
    test: the same streams in the same order on the TEST split.
    method: 'average' (the given `weights`, or equal weights), 'fitted_average' (weights searched on
      `train`, see `search_weights`) or 'svm' (linear SVM fitted on `train`).
    weights: per-stream weights for 'average' only.
    svm_c: the SVM's C.
    svm_steps: L-BFGS steps of the SVM fit.
    weight_step: grid step of 'fitted_average'.
    seed: SVM initialisation seed.

  Returns:
    FusionResult with the fused test scores.

  Raises:
    FusionError: see `fusion_inputs.check_train_test`, an unknown method, or weights given to another method.
  """
  if method not in METHODS:
    raise FusionError(f'Unknown fusion method {method!r}; choose from {list(METHODS)}.')
  if weights is not None and method != 'average':
    raise FusionError(f'Weights are given for method {method!r}; only "average" takes weights '
                      '("fitted_average" and "svm" fit theirs on the training scores).')
  train, test = fusion_inputs.check_train_test(train, test)
  streams = [s.stream for s in test]
  train_probs, test_probs = _stack_probs(train), _stack_probs(test)
  train_labels = train[0].labels
  fused_weights, svm_params = None, None

  if method in ('average', 'fitted_average'):
    if method == 'average':
      fused_weights = check_weights(np.ones(len(streams)) if weights is None else weights,
                                    len(streams))
      fused_weights = fused_weights / fused_weights.sum()
      how = 'given' if weights is not None else 'equal'
    else:
      fused_weights, _ = search_weights(train_probs, train_labels, weight_step)
      how = f'fitted on {train[0].split}, grid step {weight_step:g}'
    test_fused = weighted_average(test_probs, jnp.asarray(fused_weights))
    train_top1 = _top1(weighted_average(train_probs, jnp.asarray(fused_weights)), train_labels)
    probs = np.asarray(test_fused)
    # log, so that softmax(logits) == probs, as for a stream's own file.
    logits = np.log(np.maximum(probs, np.finfo(np.float32).tiny))
    description = 'weights ' + ', '.join(
        f'{s} {w:.2f}' for s, w in zip(streams, fused_weights)) + f' ({how})'
  else:
    svm_params = fit_linear_svm(svm_features(train_probs), train_labels, test[0].num_classes,
                                c=svm_c, steps=svm_steps, seed=seed)
    train_top1 = _top1(svm_scores(svm_params, svm_features(train_probs)), train_labels)
    decision = svm_scores(svm_params, svm_features(test_probs))
    logits = np.asarray(decision)
    # SVM decision values are not probabilities; their softmax keeps the ranking (all metrics are
    # rankings) and keeps the score file's probs rows summing to 1.
    probs = np.asarray(jax.nn.softmax(decision, axis=-1))
    description = f'C={svm_c:g}, fitted on {train[0].split}'

  views = {s.num_views for s in test}
  fused = VideoScores(
      video_ids=test[0].video_ids, labels=test[0].labels, logits=logits, probs=probs,
      class_names=test[0].class_names, split=test[0].split,
      stream=f'{method}({"+".join(streams)})', num_views=views.pop() if len(views) == 1 else 0,
      train_split=test[0].train_split)
  return FusionResult(method=method, scores=fused, weights=fused_weights, svm_params=svm_params,
                      train_top1=train_top1,
                      description=f'{description}; train top-1 {100 * train_top1:.1f}%')
