"""The Beam worker's unit of work (`beam_runner.write_unit`), run without Beam.

With a batched flow algorithm the worker decodes in its own process (`run_units_in_process`); the
records must equal the per-pair path's. A batched stand-in (Farneback behind the `BatchedFlow`
interface) replaces the JAX TV-L1, whose compile takes tens of seconds on a CPU.
"""

import os

import numpy as np

from tests import make_tfrecords_fixtures as fx
from tests.prep.test_batched_flow_writer import _BatchedFarneback
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import beam_runner
from twostream_jax.prep import shard_writer


def test_in_process_batched_unit_writes_the_pair_paths_bytes_and_a_retry_keeps_it(tmp_path):
  paths = []
  for i, (frames, size) in enumerate([(5, None), (6, (32, 40)), (4, None)]):
    rgb = fx.render(i, i, num_frames=frames)
    if size:  # another frame size: its pairs go to another bucket
      rgb = np.stack([np.ascontiguousarray(f[:size[0], :size[1]]) for f in rgb])
    paths.append(str(tmp_path / 'v' / f'video{i}.avi'))
    fx.write_avi(paths[-1], rgb)
  corrupt = str(tmp_path / 'v' / 'corrupt.avi')
  with open(corrupt, 'wb') as f:
    f.write(b'not a video' * 100)
  settings = shard_writer.EncodeSettings('farneback', 20.0, 0, 0, 1, 95)
  tasks = tuple(shard_writer.VideoTask(os.path.basename(p)[:-4], 0, 'c', p, 'videos')
                for p in (paths[0], corrupt, paths[1], paths[2]))
  batched = shard_writer.ShardSpec(str(tmp_path / 'b' / 'toy-p.tfrecord-00000-of-00001'), tasks,
                                   settings)
  pair = shard_writer.ShardSpec(str(tmp_path / 'p' / 'toy-p.tfrecord-00000-of-00001'), tasks,
                                settings)
  flow = _BatchedFarneback(batch_size=3)
  result = beam_runner.write_unit(batched, flow)
  expected = beam_runner.write_unit(pair, optical_flow.FarnebackFlow())
  assert result.videos == expected.videos and [o.ok for o in result.videos] == [1, 0, 1, 1]
  assert 'cannot open' in result.videos[1].reason
  assert {s[0] for s in flow.shapes} == {3} and {s[1:] for s in flow.shapes} == {(48, 64), (32, 40)}
  with open(batched.path, 'rb') as a, open(pair.path, 'rb') as b:
    assert a.read() == b.read()
  # A shard with a failed video is redone (a replaced file is picked up), one without is kept.
  clean = shard_writer.ShardSpec(str(tmp_path / 'c' / 'toy-c.tfrecord-00000-of-00001'),
                                 tasks[2:], settings)
  first = beam_runner.write_unit(clean, flow)
  stat = os.stat(clean.path)
  again = beam_runner.write_unit(clean, flow)
  assert again == first and (os.stat(clean.path).st_ino, os.stat(clean.path).st_mtime_ns) == (
      stat.st_ino, stat.st_mtime_ns)
  before = os.stat(batched.path).st_mtime_ns
  beam_runner.write_unit(batched, flow)
  assert os.stat(batched.path).st_mtime_ns != before
