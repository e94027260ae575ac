"""Fusion at UCF101 scale: how long each method takes, and whether the SVM fit converges.

    python bench/bench_fusion.py [--num_train 9537 --num_test 3783 --num_classes 101]
    python bench/bench_fusion.py --quick        # HMDB51-sized (3570 / 1530 videos, 51 classes)

Synthetic scores with the shapes of UCF101 split 1 (9537 training, 3783 test videos, 101 classes,
two streams); the accuracies are whatever the synthetic generator gives, only the times and the
convergence figures mean anything. Prints one line per measurement, each with the 1-minute load
average, and ends with bench/load_check.py's verdict (a loud banner when the machine was not idle).
"""

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import load_check  # pylint: disable=wrong-import-order  (the script's folder)
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import score_files


def _stream(rng, labels, num_classes, strength, stream, split):
  logits = rng.normal(size=(labels.size, num_classes)).astype(np.float32)
  logits[np.arange(labels.size), labels] += strength
  probs = np.exp(logits - logits.max(axis=1, keepdims=True))
  probs /= probs.sum(axis=1, keepdims=True)
  return score_files.VideoScores(
      video_ids=[f'{split}/v{i:05d}' for i in range(labels.size)], labels=labels, logits=logits,
      probs=probs, class_names=[f'class{i:03d}' for i in range(num_classes)], split=split,
      stream=stream, num_views=250)


def _time(fn, repeats=1):
  start = time.perf_counter()
  for _ in range(repeats):
    out = jax.block_until_ready(fn())
  return (time.perf_counter() - start) / repeats, out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--num_train', type=int, default=9537)
  parser.add_argument('--num_test', type=int, default=3783)
  parser.add_argument('--num_classes', type=int, default=101)
  parser.add_argument('--svm_steps', type=int, default=fusion.DEFAULT_SVM_STEPS)
  parser.add_argument('--quick', action='store_true', help='HMDB51-sized scores (seconds)')
  load_check.add_arguments(parser)
  args = parser.parse_args()
  if args.quick:
    args.num_train, args.num_test, args.num_classes = 3570, 1530, 51
  monitor = load_check.LoadMonitor(args.wait_idle)
  print(f'devices: {jax.devices()}; {monitor.now()}')
  rng = np.random.default_rng(0)
  train_labels = rng.integers(0, args.num_classes, args.num_train)
  test_labels = rng.integers(0, args.num_classes, args.num_test)
  streams = [('spatial', 3.0), ('temporal', 3.5), ('third', 2.5)]
  train = [_stream(rng, train_labels, args.num_classes, s + 1.0, n, 'train1') for n, s in streams]
  test = [_stream(rng, test_labels, args.num_classes, s, n, 'test1') for n, s in streams]

  probs = jnp.asarray(np.stack([s.probs for s in test[:2]]))
  weights = jnp.asarray([0.4, 0.6])
  first, _ = _time(lambda: fusion.weighted_average(probs, weights))
  warm, _ = _time(lambda: fusion.weighted_average(probs, weights), repeats=20)
  print(f'weighted_average [2, {args.num_test}, {args.num_classes}]: first call {first * 1e3:.1f} ms, '
        f'then {warm * 1e3:.2f} ms | {monitor.now()}')

  for num_streams in (2, 3):
    train_probs = np.stack([s.probs for s in train[:num_streams]])
    first, (w, correct) = _time(lambda: fusion.search_weights(train_probs, train_labels))
    warm, _ = _time(lambda: fusion.search_weights(train_probs, train_labels), repeats=3)
    grid = len(fusion.simplex_grid(num_streams))
    print(f'search_weights, {num_streams} streams ({grid} grid points): first {first:.2f} s, then '
          f'{warm:.2f} s; weights {[round(float(x), 2) for x in w]}, {correct}/{args.num_train} right | {monitor.now()}')

  features = fusion.svm_features(jnp.asarray(np.stack([s.probs for s in train[:2]])))
  first, params = _time(lambda: fusion.fit_linear_svm(features, train_labels, args.num_classes,
                                                      steps=args.svm_steps))
  warm, params = _time(lambda: fusion.fit_linear_svm(features, train_labels, args.num_classes,
                                                     steps=args.svm_steps, seed=1))
  labels = jnp.asarray(train_labels)
  grad = jax.grad(fusion.svm_objective)(params, features, labels, fusion.DEFAULT_SVM_C)
  grad_norm = float(jnp.sqrt(sum(jnp.sum(g ** 2) for g in grad)))
  objective = float(fusion.svm_objective(params, features, labels, fusion.DEFAULT_SVM_C))
  print(f'fit_linear_svm [{args.num_train}, {features.shape[1]}] -> {args.num_classes} classes, '
        f'{args.svm_steps} L-BFGS steps: first {first:.2f} s (with compilation), then {warm:.2f} s; '
        f'objective {objective:.6f}, gradient norm {grad_norm:.2e} | {monitor.now()}')

  with tempfile.TemporaryDirectory() as folder:
    paths = {}
    for scores in train[:2] + test[:2]:
      paths[scores.stream, scores.split] = os.path.join(folder, f'{scores.stream}_{scores.split}.npz')
      score_files.save_scores(paths[scores.stream, scores.split], scores)
    start = time.perf_counter()
    result = fusion_run.run_fusion([paths['spatial', 'train1'], paths['temporal', 'train1']],
                             [paths['spatial', 'test1'], paths['temporal', 'test1']],
                             os.path.join(folder, 'out'), svm_steps=args.svm_steps)
    print(f'run_fusion (load, 3 methods, write; SVM already compiled): '
          f'{time.perf_counter() - start:.2f} s | {monitor.now()}')
    print(result['markdown'], end='')
  print(monitor.verdict())


if __name__ == '__main__':
  main()
