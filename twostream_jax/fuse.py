"""Late fusion from score files: fit on training-split scores, evaluate on test-split scores.

    python -m twostream_jax.fuse \\
        --train_scores runs/spatial/eval/train1/scores.npz,runs/temporal/eval/train1/scores.npz \\
        --test_scores runs/spatial/eval/test1/scores.npz,runs/temporal/eval/test1/scores.npz \\
        --output_dir runs/fusion_split1 [--methods average,fitted_average,svm] [--weights 1,1.5] \\
        [--svm_c 1]

List the streams in the same order in both lists (`<workdir>/eval/<split>/scores.npz` is where
evaluation writes a stream's scores). Methods: 'average' (--weights, equal if not given: the
paper's averaging), 'fitted_average' (weights picked on the training scores), 'svm' (the paper's
linear SVM). What --output_dir receives: `evaluation.fusion_run`, which does the work; this module
only parses flags, and defines them only when run as a program (`main` stays the package's
flag-defining module).
"""

from __future__ import annotations

import sys
from typing import Sequence

from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import score_files


def _define_flags() -> None:
  from absl import flags  # Only the program needs absl's flags; see the module docstring.
  flags.DEFINE_list('train_scores', None, 'Score files (.npz) of each stream on the TRAINING split, '
                    'comma-separated; fusion weights and the SVM are fitted on these.', required=True)
  flags.DEFINE_list('test_scores', None, 'Score files of the same streams, in the same order, on '
                    'the TEST split.', required=True)
  flags.DEFINE_string('output_dir', None, 'Folder for fused score files, results.md and '
                      'results.json.', required=True)
  flags.DEFINE_list('methods', list(fusion.METHODS), f'Fusion methods, from {list(fusion.METHODS)}.')
  flags.DEFINE_list('weights', None, 'Per-stream weights for "average" (default: equal weights).')
  flags.DEFINE_float('svm_c', fusion.DEFAULT_SVM_C, 'The linear SVM\'s regularisation constant C '
                     '(liblinear / LinearSVC meaning: larger fits the training scores more closely).')
  flags.DEFINE_integer('svm_steps', fusion.DEFAULT_SVM_STEPS, 'L-BFGS steps of the SVM fit.')
  flags.DEFINE_float('weight_step', fusion.DEFAULT_WEIGHT_STEP, 'Grid step of "fitted_average".')
  flags.DEFINE_integer('seed', 0, 'Seed of the SVM initialisation.')
  flags.DEFINE_bool('confusion_matrices', False, 'Also draw a confusion-matrix PNG per row.')


def main(argv: Sequence[str]) -> None:
  """Runs `fusion_run.run_fusion` from the flags of `_define_flags` and prints the markdown table."""
  from absl import app, flags, logging
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  if not f['verbosity'].present:
    # JAX logs "Unable to initialize backend 'tpu'" at INFO on every host without one.
    logging.set_verbosity(logging.WARNING)
  try:
    weights = None if f.weights is None else [float(w) for w in f.weights]
  except ValueError as e:
    raise app.UsageError(f'--weights must be comma-separated numbers, got {f.weights}.') from e
  try:
    result = fusion_run.run_fusion(f.train_scores, f.test_scores, f.output_dir, f.methods, weights,
                                   f.svm_c, svm_steps=f.svm_steps, weight_step=f.weight_step,
                                   seed=f.seed, confusion_matrices=f.confusion_matrices)
  except (FileNotFoundError, score_files.ScoreFileError, fusion.FusionError) as e:
    # A user's mistake: one clear line, no traceback.
    print(f'fuse: error: {e}', file=sys.stderr)
    sys.exit(1)
  print(result['markdown'], end='')
  print(f'Wrote {result["results_md"]}, {result["results_json"]} and '
        f'{len(result["fused_scores"])} fused score files in {f.output_dir}.')


if __name__ == '__main__':
  from absl import app
  _define_flags()
  app.run(main)
