"""End to end: the demo job (synthetic videos -> records -> both streams -> protocol -> fusion) on a
minimal synthetic set through the real command line. Accuracy is the main job's business, not this
test's: it checks that the chain runs and writes its files."""

import json
import os
import subprocess
import sys

from twostream_jax.train import checkpointing
from tests.config_fixtures import REPO_ROOT


def test_demo_chain_writes_results(tmp_path):
  workdir, data_root = tmp_path / 'run', tmp_path / 'data'
  overrides = {
      'demo.data_root': data_root, 'demo.video_height': 48, 'demo.video_width': 64,
      'demo.video_frames': 8, 'demo.train_per_class': 2, 'demo.test_per_class': 1,
      'demo.spatial_steps': 2, 'demo.temporal_steps': 2, 'demo.flow_algorithm': 'farneback',
      # Records in this process: a pool's start-up (a fork server importing TensorFlow) would cost
      # more than the 18 tiny videos' flow (the pool itself is tested in tests/prep).
      'demo.num_workers': 1,
      'model.name': 'tiny', 'data.crop_size': 32, 'data.num_flow_fields': 2,
      'data.test_num_frames': 2, 'data.test_num_crops': 2, 'train.global_batch_size': 4,
      'train.eval_batch_size': 4, 'optim.warmup_steps': 0, 'eval.train_num_frames': 1,
  }
  cmd = [sys.executable, '-m', 'twostream_jax.main', '--config=configs/demo.py',
         f'--workdir={workdir}'] + [f'--config.{k}={v}' for k, v in overrides.items()]
  out = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  results = json.loads((workdir / 'results.json').read_text())
  names = [row['name'] for row in results['rows']]
  for stream in ('spatial', 'temporal', 'temporal_no_mean_subtraction'):
    assert stream in names
    assert (workdir / stream / 'eval' / 'test1' / 'scores.npz').exists()
    assert (workdir / stream / 'eval' / 'test1' / 'confusion_matrix.png').exists()
    metrics = json.loads((workdir / stream / 'eval' / 'test1' / 'metrics.json').read_text())
    assert metrics['num_videos'] == 6  # 6 classes x 1 test video, each evaluated once.
    # Each stream is a plain training run: its checkpoints store no experiment key.
    meta = checkpointing.Checkpointer(str(workdir / stream), keep=1, every_steps=1).read_meta()
    stored = json.loads(meta['config'])
    assert stored['mode'] == 'train_eval' and not {'experiment', 'demo', 'ablations'} & set(stored)
  assert any('svm' in n for n in names) and any('average' in n for n in names)
  assert results['ceilings']['both'] == 1.0
  assert (workdir / 'results.md').exists()
  # The predict stage: three test videos from their files, pictures linked from results.md.
  predictions = json.loads((workdir / 'predictions.json').read_text())
  assert len(predictions['videos']) == 3 and predictions['num_failed'] == 0
  assert len(os.listdir(workdir / 'predictions')) == 3
  assert 'predictions/' in (workdir / 'results.md').read_text()
  assert 'top1' in out.stdout or '|' in out.stdout  # The table was printed.
