"""The fitted fusion on disk: what `fuse` writes, read back, fuses new scores as `fuse` fused its test set."""

import numpy as np
import pytest

from twostream_jax.evaluation import fusion
from twostream_jax.evaluation import fusion_file
from twostream_jax.evaluation import fusion_run
from twostream_jax.evaluation import score_files
from tests.evaluation.test_fusion_run import CLASSES, _write_streams


@pytest.mark.parametrize('method', fusion.METHODS)
def test_saved_fusion_reproduces_the_fused_test_scores(method, tmp_path):
  train = _write_streams(str(tmp_path), 'train1', 60, seed=0)
  test = _write_streams(str(tmp_path), 'test1', 30, seed=1)
  result = fusion_run.run_fusion(train, test, str(tmp_path / 'out'), [method], svm_steps=50)
  loaded = fusion_file.load_fitted_fusion(result['fusion_files'][method])
  assert loaded.method == method and loaded.streams == ['spatial', 'temporal']
  assert loaded.class_names == CLASSES
  probs = np.stack([score_files.load_scores(p).probs for p in test])
  expected = result['fusions'][method].scores.probs
  np.testing.assert_allclose(loaded.apply(probs), expected, atol=1e-5)


def test_equal_average_and_bad_files(tmp_path):
  average = fusion_file.equal_average(['spatial', 'temporal'], CLASSES)
  probs = np.array([[[0.2, 0.3, 0.5]], [[0.6, 0.2, 0.2]]], np.float32)
  np.testing.assert_allclose(average.apply(probs), [[0.4, 0.25, 0.35]], atol=1e-6)
  with pytest.raises(FileNotFoundError, match='fuse'):
    fusion_file.load_fitted_fusion(str(tmp_path / 'none.npz'))
  (tmp_path / 'scores.npz').write_bytes(b'not a zip')
  with pytest.raises(fusion.FusionError, match='not a fusion file'):
    fusion_file.load_fitted_fusion(str(tmp_path / 'scores.npz'))
