"""Training's host memory does not grow with the number of videos (docs/rehearsal.md, "Limits"):
the same training stream over 4 and over 120 videos, each in a fresh process, peaks within a margin
far below what holding the extra videos' frames would take."""

import os
import subprocess
import sys

from tests import record_fixtures
from tests.config_fixtures import REPO_ROOT

_CHILD = r'''
import resource, sys
from twostream_jax.config_loading import config_beside
from twostream_jax.data import data_spec, pipeline_ops, train_dataset
c = config_beside(sys.argv[2], 'default.py')
c.data.data_dirs, c.data.modality, c.data.crop_size, c.data.val_split = sys.argv[1], 'rgb', 96, ''
spec = data_spec.DataSpec.from_config(c.data)
batches = pipeline_ops.numpy_batches(train_dataset.create_train_dataset(spec, global_batch_size=8,
                                                                        seed=0))
for _ in range(20):
  next(batches)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
'''

FRAMES, HEIGHT, WIDTH = 10, 128, 160


def _peak_rss(data_dir: str) -> int:
  out = subprocess.run([sys.executable, '-c', _CHILD, data_dir,
                        os.path.join(REPO_ROOT, 'configs', 'default.py')],
                       cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
  assert out.returncode == 0, out.stderr[-3000:]
  return int(out.stdout.split()[-1])


def test_training_host_memory_does_not_grow_with_the_number_of_videos(tmp_path):
  peaks = {}
  for per_class in (2, 60):
    out = str(tmp_path / f'records_{per_class}')
    record_fixtures.write_tiny_dataset(out, num_classes=2, train_per_class=per_class,
                                       test_per_class=1, num_frames=FRAMES, height=HEIGHT,
                                       width=WIDTH, shards_per_partition=2)
    peaks[per_class] = _peak_rss(out)
  extra_frames_bytes = (60 - 2) * 2 * FRAMES * HEIGHT * WIDTH * 3  # decoded, about 71 MB
  assert peaks[60] - peaks[2] < extra_frames_bytes / 3, peaks
