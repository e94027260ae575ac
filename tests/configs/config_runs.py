"""Running a config of configs/ through `python -m twostream_jax.main` at its own shapes.

tests/configs/test_spatial_configs.py and test_temporal_configs.py run every config that trains
(two files, so that two test workers share them). Each config keeps its model, crop size, L, dropout and schedule; the batch size, the step count and
the data folders change, and (for time) the 224-pixel configs neither validate nor score the
training split. It trains two steps on tiny records and evaluates with its own test protocol (25
positions x 10 crops) on the one test video, writing `eval/.../metrics.json`. One device: a second
would score a padding video beside the one test video.
"""

import glob
import json
import os
import subprocess
import sys

from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT

def write_records(root):
  """Two tiny record folders (one per multi-task data set), each with one test video."""
  dirs = []
  for name in ('first', 'second'):
    out = str(root / name)
    # 12 frames: one stack of L=10 fields fits; 96 px: the small config's crop fits the frames.
    record_fixtures.write_tiny_dataset(out, num_classes=2, train_per_class=3,
                                       test_per_class=[1, 0], num_frames=12, height=96,
                                       width=112, shards_per_partition=1, name=name)
    dirs.append(out)
  return dirs


def training_config_names() -> set[str]:
  """The configs of configs/ that train (the others are experiments or the defaults)."""
  configs = {os.path.basename(p) for p in glob.glob(os.path.join(REPO_ROOT, 'configs', '*.py'))}
  return configs - {'default.py', 'demo.py', 'ablations.py'}


def train_two_steps_and_evaluate_one_video(config_name: str, records: list[str], tmp_path) -> None:
  """Runs the config (module docstring) and checks the protocol's metrics of the one test video."""
  data_dirs = ','.join(records) if config_name == 'temporal_multitask.py' else records[0]
  workdir = tmp_path / 'run'
  quicker = [] if config_name == 'small.py' else ['--config.data.val_split=',
                                                  '--config.eval.score_train_split=False']
  env = dict(os.environ, XLA_FLAGS='')
  out = subprocess.run(
      [sys.executable, '-m', 'twostream_jax.main', f'--config=configs/{config_name}',
       f'--workdir={workdir}', f'--config.data.data_dirs={data_dirs}',
       '--config.train.global_batch_size=2', '--config.train.num_train_steps=2',
       '--config.mode=train_eval', *quicker],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  metrics_files = glob.glob(str(workdir / 'eval' / '**' / 'test1' / 'metrics.json'), recursive=True)
  assert len(metrics_files) == 1, metrics_files
  with open(metrics_files[0]) as f:
    metrics = json.load(f)
  assert metrics['num_videos'] == 1, metrics
  assert sorted(glob.glob(str(workdir / 'checkpoints' / '*')))
