"""Tests of the batched-flow path: decoding workers + batches across videos in this process.

A batched stand-in (Farneback pair by pair behind the `BatchedFlow` interface) replaces the JAX
TV-L1, whose compile takes tens of seconds on a CPU; the records must equal the per-pair path's.
"""

import os

import numpy as np

from tests import make_tfrecords_fixtures as fx
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import batched_flow_writer
from twostream_jax.prep import shard_writer


class _BatchedFarneback(optical_flow.BatchedFlow):
  name = 'farneback'

  def __init__(self, batch_size):
    self.batch_size = batch_size
    self.shapes = []
    self._pair = optical_flow.FarnebackFlow()

  def parameters(self):
    return self._pair.parameters()

  def compute_batch(self, gray0, gray1):
    self.shapes.append(gray0.shape)
    return np.stack([self._pair.compute(a, b) for a, b in zip(gray0, gray1)])


def test_batched_path_writes_the_same_records_as_the_pair_path(tmp_path):
  videos = []
  for i, (frames, size) in enumerate([(5, None), (4, None), (6, (32, 40)), (3, None)]):
    rgb = fx.render(i, i, num_frames=frames)
    if size:  # another frame size: its pairs go to another bucket
      rgb = np.stack([np.ascontiguousarray(f[:size[0], :size[1]]) for f in rgb])
    path = str(tmp_path / 'v' / f'video{i}.avi')
    fx.write_avi(path, rgb)
    videos.append(path)
  corrupt = str(tmp_path / 'v' / 'corrupt.avi')
  with open(corrupt, 'wb') as f:
    f.write(b'not a video' * 100)
  settings = shard_writer.EncodeSettings('farneback', 20.0, 0, 0, 1, 95)
  task = lambda p: shard_writer.VideoTask(os.path.basename(p)[:-4], 0, 'c', p, 'videos')
  groups = [[videos[0], corrupt, videos[1]], [videos[2], videos[3]]]
  batched_specs = [shard_writer.ShardSpec(str(tmp_path / 'b' / f'toy-p.tfrecord-0000{i}-of-00002'),
                                          tuple(task(p) for p in g), settings)
                   for i, g in enumerate(groups)]
  pair_specs = [shard_writer.ShardSpec(s.path.replace('/b/', '/p/'), s.videos, settings)
                for s in batched_specs]
  flow = _BatchedFarneback(batch_size=3)
  done = []
  results = batched_flow_writer.run_units(batched_specs, flow, num_workers=2,
                                          on_video_done=done.append)
  assert sorted(done) == [False, True, True, True, True]
  assert {s[0] for s in flow.shapes} == {3} and {s[1:] for s in flow.shapes} == {(48, 64), (32, 40)}
  by_path = {r.path: r for r in results}
  for batched, pair in zip(batched_specs, pair_specs):
    expected = shard_writer.write_shard(pair)
    assert by_path[batched.path].videos == expected.videos
    # The source rate of each written video (the fixtures' .avi files are 25 fps), on both paths.
    assert {o.fps for o in expected.videos if o.ok} == {25.0}
    assert fx.read_records([batched.path]) == fx.read_records([pair.path])
  assert 'cannot open' in by_path[batched_specs[0].path].videos[1].reason
  assert shard_writer.load_result(batched_specs[1].path) is not None
