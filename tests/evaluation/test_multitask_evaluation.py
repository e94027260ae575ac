"""Multi-task evaluation: `eval.dataset` picks the data set and its head; heads are tied to names."""

import os

import numpy as np
import pytest

from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import score_files
from twostream_jax.train import loop as train_loop
from twostream_jax.train import protocol_evaluation
from tests import record_fixtures
from tests.config_fixtures import spec_of, tiny_train_config


@pytest.fixture(scope='module')
def two_data_sets(tmp_path_factory):
  root = tmp_path_factory.mktemp('multitask')
  alpha, beta = str(root / 'alpha'), str(root / 'beta')
  record_fixtures.write_tiny_dataset(alpha, num_classes=3, name='alpha', seed=1)
  record_fixtures.write_tiny_dataset(beta, num_classes=4, test_per_class=1, name='beta', seed=2)
  return alpha, beta


def _config(dirs):
  c = tiny_train_config(','.join(dirs))
  c.mode = 'train_eval'
  c.train.num_train_steps = 3
  c.train.checkpoint_every_steps = 3
  c.eval.train_num_frames = 1
  c.eval.train_num_crops = 1
  return c


@pytest.fixture(scope='module')
def trained(two_data_sets, tmp_path_factory):
  """A multi-task run (2 heads) trained for a few steps: (workdir, final state)."""
  workdir = str(tmp_path_factory.mktemp('run'))
  return workdir, train_loop.train(_config(two_data_sets), spec_of(_config(two_data_sets)), workdir)


def test_each_head_evaluates_its_own_data_set(two_data_sets, trained):
  workdir, state = trained
  config = _config(two_data_sets)
  # '' (the first) and an index restore the checkpoint in this process; a name uses the state.
  for choice, name, classes, per_class in (('', 'alpha', 3, 2), ('beta', 'beta', 4, 1),
                                           ('1', 'beta', 4, 1)):
    config.eval.dataset = choice
    results = protocol_evaluation.evaluate_run(config, spec_of(config), workdir, state if choice == 'beta' else None)
    assert results['test1']['dataset'] == name
    out = evaluate.split_dir(workdir, 'test1', name)
    scores = score_files.load_scores(os.path.join(out, 'scores.npz'))
    # The head of that data set: its class count, its test videos and their labels.
    assert scores.probs.shape == (classes * per_class, classes)
    assert scores.class_names == [record_fixtures.class_name(k) for k in range(classes)]
    np.testing.assert_array_equal(scores.labels, np.repeat(np.arange(classes), per_class))
    np.testing.assert_allclose(scores.probs.sum(-1), 1.0, rtol=1e-5)
    # The training-split scores used by fusion come from the same data set and head.
    train_scores = score_files.load_scores(
        os.path.join(evaluate.split_dir(workdir, 'train1', name), 'scores.npz'))
    assert train_scores.probs.shape == (classes * 4, classes)


def test_reordered_data_sets_are_refused_by_name(two_data_sets, trained):
  workdir, _ = trained
  config = _config(two_data_sets)
  swapped = _config(two_data_sets[::-1])
  with pytest.raises(ValueError, match=r"trained on data sets \['alpha', 'beta'\]"):
    protocol_evaluation.evaluate_run(swapped, spec_of(swapped), workdir)
  config.eval.dataset = 'gamma'
  with pytest.raises(ValueError, match='not one of the run'):
    protocol_evaluation.evaluate_run(config, spec_of(config), workdir)
