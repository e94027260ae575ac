"""The fusion command end to end on small synthetic score files (the library: tests/evaluation/
test_fusion_run.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from twostream_jax import fuse
from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import score_files
# The score files of both splits, whose fusions are worked out by hand there.
from tests.evaluation.test_fusion_run import score_paths  # pylint: disable=unused-import


def _env():
  # The child must find the package whether or not it is installed, and run on the CPU.
  root = os.path.dirname(os.path.dirname(os.path.abspath(fuse.__file__)))
  return dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get('PYTHONPATH', ''),
              JAX_PLATFORMS='cpu')


# `python -m twostream_jax.fuse ARGS`, and then a check that nothing imported TensorFlow: the
# fusion modules are JAX core and must run on hosts without it.
_CLI = '''
import runpy, sys
sys.argv = ['twostream_jax.fuse'] + sys.argv[1:]
try:
  runpy.run_module('twostream_jax.fuse', run_name='__main__', alter_sys=True)
  code = 0
except SystemExit as e:
  code = e.code
assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'
sys.exit(code)
'''


def _run_cli(*args):
  return subprocess.run([sys.executable, '-c', _CLI, *args], capture_output=True, text=True,
                        env=_env(), timeout=300)


def test_cli_writes_fused_scores_and_results_table(score_paths, tmp_path):
  train, test = score_paths
  out = str(tmp_path / 'fusion')
  proc = _run_cli('--train_scores', ','.join(train), '--test_scores', ','.join(test),
                  '--output_dir', out, '--svm_c', '10')
  assert proc.returncode == 0, proc.stderr

  with open(os.path.join(out, 'results.md')) as f:
    markdown = f.read()
  assert markdown in proc.stdout  # the table is printed as written
  assert markdown.splitlines()[0].startswith('| Scores | Top-1 (%) | Top-5 (%) |')

  with open(os.path.join(out, 'results.json')) as f:
    rows = {row['name']: row for row in json.load(f)['rows']}
  assert list(rows) == ['spatial', 'temporal', 'average', 'fitted_average', 'svm']
  expected_top1 = {'spatial': 1 / 3, 'temporal': 1.0, 'average': 1 / 3, 'fitted_average': 1.0,
                   'svm': 1.0}
  for name, top1 in expected_top1.items():
    assert rows[name]['top1'] == pytest.approx(top1), name
    assert rows[name]['top5'] == pytest.approx(1.0)  # k = 5 clipped to 3 classes
    assert rows[name]['mean_class_accuracy'] == pytest.approx(top1)  # 10 videos per class
    assert rows[name]['num_videos'] == 30
  np.testing.assert_allclose(rows['fitted_average']['weights'], [0.10, 0.90], atol=1e-6)
  assert rows['svm']['svm_c'] == 10.0
  assert '| spatial | 33.3 | 100.0 | 33.3 | 30 |' in markdown

  for method in fusion.METHODS:
    fused = score_files.load_scores(os.path.join(out, f'fused_{method}.npz'))
    assert fused.stream == f'{method}(spatial+temporal)' and fused.split == 'test1'
    assert fused.num_videos == 30


def test_cli_refuses_test_scores_as_training_scores(score_paths, tmp_path):
  _, test = score_paths
  out = str(tmp_path / 'fusion')
  proc = _run_cli('--train_scores', ','.join(test), '--test_scores', ','.join(test),
                  '--output_dir', out)
  assert proc.returncode == 1
  assert 'never fitted on the test set' in proc.stderr
  assert 'Traceback' not in proc.stderr  # one clear line, not a stack
  assert not os.path.exists(out)


def test_cli_refuses_the_score_lists_the_wrong_way_round(score_paths, tmp_path):
  train, test = score_paths
  out = str(tmp_path / 'fusion')
  proc = _run_cli('--train_scores', ','.join(test), '--test_scores', ','.join(train),
                  '--output_dir', out)
  assert proc.returncode == 1
  # The split recorded in the file is named, with the training split of the run that made it.
  assert ("'spatial/test1' are of split 'test1', which is not the training split 'train1'"
          in proc.stderr), proc.stderr
  assert 'Traceback' not in proc.stderr and not os.path.exists(out)
