"""A killed evaluation resumes from its partial scores: the rerun scores only the videos they lack,
and its `scores.npz` holds the arrays of an uninterrupted evaluation's.

`python -m twostream_jax.main --config.mode=eval` is killed with SIGKILL once its partial scores
cover more than half of the 60 test videos; the same command then finishes the split.
"""

import json
import os
import re
import shutil
import signal
import subprocess

import numpy as np
import pytest

from twostream_jax.evaluation import evaluate
from twostream_jax.evaluation import partial_scores
from twostream_jax.train import checkpointing
from twostream_jax.train import protocol_evaluation
from twostream_jax.train import restore
from twostream_jax.train import sharding
from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT, spec_of, tiny_train_config
from tests.main_commands import main_command, run_signalled

NUM_TEST_VIDEOS = 60


def _config(data_dir):
  config = tiny_train_config(data_dir)
  config.eval.score_train_split = False
  config.eval.partial_scores_every_seconds = 0.0  # After every batch (2 videos).
  config.train.cpu_convolutions = 'ynnpack'  # The test process's kernels (tests/conftest.py).
  return config


def _arrays(path):
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """(config, workdir) of a run on records with 60 test videos, checkpointed at its initial state
  (what evaluation scores does not matter here; compiling a train step would only cost time)."""
  data_dir = str(tmp_path_factory.mktemp('records'))
  record_fixtures.write_tiny_dataset(data_dir, train_per_class=2,
                                     test_per_class=NUM_TEST_VIDEOS // 3)
  config = _config(data_dir)
  workdir = str(tmp_path_factory.mktemp('run'))
  state, _ = restore.init_state(config, spec_of(config), sharding.create_mesh())
  ckpt = checkpointing.Checkpointer(workdir, keep=1, every_steps=0)
  ckpt.save(state, {'seed': config.seed, 'config': config.to_json(), 'datasets': ['tiny'],
                    'step': 0})
  ckpt.wait()
  return config, workdir


def test_a_killed_evaluation_resumes_and_writes_the_same_scores(trained, tmp_path):
  config, trained_dir = trained
  reference_dir, workdir = str(tmp_path / 'reference'), str(tmp_path / 'killed')
  shutil.copytree(trained_dir, reference_dir)
  shutil.copytree(trained_dir, workdir)
  protocol_evaluation.evaluate_run(config, spec_of(config), reference_dir)
  split_dir = evaluate.split_dir(workdir, config.data.eval_split)
  partial_path = os.path.join(split_dir, partial_scores.FILENAME)

  config.mode = 'eval'

  def past_half(line):
    written = re.match(r'partial scores: (\d+)/(\d+) videos', line)
    return bool(written) and int(written.group(1)) > NUM_TEST_VIDEOS // 2

  returncode, output = run_signalled(main_command(config, workdir), past_half, signal.SIGKILL,
                                     stderr=subprocess.DEVNULL)
  assert returncode == -signal.SIGKILL, f'not killed halfway:\n{output[-3000:]}'
  assert not os.path.exists(os.path.join(split_dir, 'scores.npz'))
  killed_scored = int(_arrays(partial_path)['scored'].sum())
  assert NUM_TEST_VIDEOS // 2 < killed_scored < NUM_TEST_VIDEOS

  out = subprocess.run(main_command(config, workdir), cwd=REPO_ROOT, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  resumed = re.search(r'(\d+) of (\d+) videos scored by an earlier run; scoring the other (\d+)',
                      out.stdout)
  assert resumed, out.stdout[-3000:]
  assert (int(resumed.group(1)), int(resumed.group(2))) == (killed_scored, NUM_TEST_VIDEOS)
  assert int(resumed.group(3)) < NUM_TEST_VIDEOS // 2  # The rerun scored fewer than half.
  assert not os.path.exists(partial_path)  # Removed once scores.npz is written.

  got = _arrays(os.path.join(split_dir, 'scores.npz'))
  want = _arrays(os.path.join(evaluate.split_dir(reference_dir, config.data.eval_split),
                              'scores.npz'))
  assert sorted(got) == sorted(want) and len(got['video_ids']) == NUM_TEST_VIDEOS
  for key in want:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  with open(os.path.join(split_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['num_videos'] == NUM_TEST_VIDEOS


def test_partial_scores_of_another_checkpoint_or_protocol_are_not_reused(trained, tmp_path):
  config, _ = trained
  kwargs = dict(step=2, split='test1', dataset='tiny', stream='temporal', num_frames=3,
                num_crops=2, num_videos=2)
  key = protocol_evaluation.partial_key(config, **kwargs)
  path = str(tmp_path / partial_scores.FILENAME)
  first = partial_scores.PartialScores(path, key, ['a', 'b'], 3, every_seconds=0)
  logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
  assert first.update(np.array([True, False]), np.array([2, -1]), logits, logits / 6)
  again = partial_scores.PartialScores(path, key, ['a', 'b'], 3)
  assert again.scored_indices().tolist() == [0] and again.resumed_from == 1
  np.testing.assert_array_equal(again.logit_sums[0], logits[0])

  later = protocol_evaluation.partial_key(config, **dict(kwargs, step=4))
  other = partial_scores.PartialScores(path, later, ['a', 'b'], 3)
  assert other.resumed_from == 0 and 'step: 2 -> 4' in other.ignored
  config.data.num_flow_fields = 3  # Another model input: another config digest.
  changed = protocol_evaluation.partial_key(config, **kwargs)
  config.data.num_flow_fields = 2
  assert 'config_sha256' in partial_scores.PartialScores(path, changed, ['a', 'b'], 3).ignored
  # How scores are computed is not part of the key.
  config.train.eval_batch_size = 64
  assert protocol_evaluation.partial_key(config, **kwargs) == key
