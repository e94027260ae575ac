"""Late fusion of score files, as `python -m twostream_jax.fuse` and the demo run it.

`run_fusion` fits each method of `fusion` on the streams' training-split score files, evaluates it
on their test-split score files and writes, into one folder: a fused score file per method
(`fused_<method>.npz`, `score_files`' format), the fitted fusion per method (`fusion_<method>.npz`,
`fusion_file`, what prediction on new videos reads), and `results.md` / `results.json` (each stream
and each fusion: top-1, top-5, mean class accuracy, number of videos; `results_table`). Mismatched
inputs are refused before anything is written (`fusion_inputs`); a score file that does not record
its run's training split takes it from the workdir it lies in. Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Sequence

import numpy as np

from twostream_jax.data import workdir_metadata
from twostream_jax.evaluation import classification_metrics
from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_file
from twostream_jax.evaluation import fusion_inputs
from twostream_jax.evaluation import results_table
from twostream_jax.evaluation import score_files


def _fused_filename(method: str) -> str:
  return f'fused_{method}.npz'


def _row(name: str, scores: score_files.VideoScores, notes: str, **extra: Any) -> dict[str, Any]:
  row = {'name': name, **classification_metrics.compute_metrics(scores.probs, scores.labels)}
  row.update(notes=notes, split=scores.split, **extra)
  return row


def _load_scores(path: str) -> score_files.VideoScores:
  """A score file; one that does not record its run's training split takes it from the training
  workdir it lies in (`<workdir>/eval/[<dataset>/]<split>/scores.npz`, the workdir's
  `dataset_metadata.json`), when it lies in one."""
  scores = score_files.load_scores(path)
  if scores.train_split:
    return scores
  folder = os.path.dirname(os.path.abspath(path))
  for _ in range(4):
    folder = os.path.dirname(folder)
    if os.path.isfile(os.path.join(folder, workdir_metadata.FILENAME)):
      try:
        train_split = str(workdir_metadata.load(folder).config.data.train_split)
      except (ValueError, KeyError, AttributeError):
        return scores  # not a readable training workdir: the split's name decides
      return dataclasses.replace(scores, train_split=train_split)
  return scores


def run_fusion(train_paths: Sequence[str], test_paths: Sequence[str], output_dir: str,
               methods: Sequence[str] = fusion.METHODS, weights: Sequence[float] | None = None,
               svm_c: float = fusion.DEFAULT_SVM_C, *, svm_steps: int = fusion.DEFAULT_SVM_STEPS,
               weight_step: float = fusion.DEFAULT_WEIGHT_STEP, seed: int = 0,
               confusion_matrices: bool = False) -> dict[str, Any]:
  """Fits each fusion method on the training score files and evaluates it on the test score files.

  Args:
    train_paths: one score file per stream on the training split.
    test_paths: the same streams, in the same order, on the test split.
    output_dir: where fused score files, results.md and results.json go (created if needed).
    methods: names from `fusion.METHODS`, in table order.
    weights: per-stream weights for 'average' (None: equal weights).
    svm_c: the SVM's C.
    svm_steps: L-BFGS steps of the SVM fit.
    weight_step: grid step of 'fitted_average'.
    seed: SVM initialisation seed.
    confusion_matrices: also draw `confusion_<name>.png` for every stream and fusion.

  Returns:
    {'rows': the table rows, 'markdown': the table, 'results_md': path, 'results_json': path,
     'fused_scores': method -> fused score file path, 'fusions': method -> `fusion.FusionResult`,
     'fusion_files': method -> the fitted fusion's file (`fusion_file`), for predict}.

  Raises:
    FileNotFoundError, score_files.ScoreFileError, fusion.FusionError: unusable inputs, before any
      file is written.
  """
  methods = list(methods)
  unknown = [m for m in methods if m not in fusion.METHODS]
  if unknown or not methods:
    raise fusion.FusionError(f'Unknown or no fusion methods {unknown or methods}; choose from '
                             f'{list(fusion.METHODS)}.')
  if len(set(methods)) != len(methods):
    raise fusion.FusionError(f'Fusion methods {methods} list one twice.')
  if weights is not None and 'average' not in methods:
    raise fusion.FusionError('--weights is only used by the "average" method, which is not in '
                             f'--methods {methods}.')
  train = [_load_scores(p) for p in train_paths]
  test = [_load_scores(p) for p in test_paths]
  # Refuse mismatched inputs before any method runs or any file is written.
  train, test = fusion_inputs.check_train_test(train, test)
  if weights is not None:
    fusion.check_weights(weights, len(test))

  rows = [_row(s.stream, s, f'{s.split}, {s.num_views} views per video', score_file=path)
          for s, path in zip(test, test_paths)]
  fusions, fused_paths, fusion_paths = {}, {}, {}
  for method in methods:
    result = fusion.fuse(train, test, method, weights=weights if method == 'average' else None,
                         svm_c=svm_c, svm_steps=svm_steps, weight_step=weight_step, seed=seed)
    fusions[method] = result
    fused_paths[method] = os.path.join(output_dir, _fused_filename(method))
    score_files.save_scores(fused_paths[method], result.scores)
    # The fitted fusion itself, for `python -m twostream_jax.predict --fusion` on new videos.
    fusion_paths[method] = os.path.join(output_dir, f'fusion_{method}.npz')
    fusion_file.save_fitted_fusion(fusion_paths[method], fusion_file.fitted_fusion(
        result, [s.stream for s in test], test[0].class_names))
    extra = {'train_top1': result.train_top1, 'score_file': fused_paths[method]}
    if result.weights is not None:
      # Grid weights are float32 multiples of the step; 6 decimals print them as the step intends.
      extra['weights'] = [round(float(w), 6) for w in result.weights]
    if method == 'svm':
      extra['svm_c'] = float(svm_c)
    rows.append(_row(method, result.scores, result.description, **extra))

  if confusion_matrices:
    for row, scores in zip(rows, test + [fusions[m].scores for m in methods]):
      cm = classification_metrics.confusion_matrix(np.argmax(scores.probs, axis=1), scores.labels,
                                                   scores.num_classes)
      safe_name = re.sub(r'[^A-Za-z0-9_.+-]', '_', row['name'])
      path = os.path.join(output_dir, f'confusion_{safe_name}.png')
      classification_metrics.save_confusion_matrix_png(
          cm, scores.class_names, path, f'{scores.stream} on {scores.split}: '
          f'top-1 {100 * row["top1"]:.1f}%')
      row['confusion_png'] = path

  md_path, json_path = results_table.write_results_table(rows, output_dir)
  return {'rows': rows, 'markdown': results_table.markdown_table(rows), 'results_md': md_path,
          'results_json': json_path, 'fused_scores': fused_paths, 'fusions': fusions,
          'fusion_files': fusion_paths}
