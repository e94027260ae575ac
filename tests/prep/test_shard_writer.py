"""Tests of one unit of work: a shard of tiny videos, TV-L1 flow, alignment, failures, purity."""

import glob
import os
import pickle

import cv2
import numpy as np

from tests import make_tfrecords_fixtures as fx
from twostream_jax.data import record_schema
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import shard_writer

BOUND = 20.0


def _spec(path, videos, algorithm='farneback', short_side=fx.HEIGHT, **kwargs):
  settings = shard_writer.EncodeSettings(algorithm, BOUND, short_side, 0, 1, 95, **kwargs)
  tasks = tuple(shard_writer.VideoTask(os.path.splitext(os.path.basename(v))[0], i % 2,
                                       f'class{i % 2}', v, 'videos') for i, v in enumerate(videos))
  return shard_writer.ShardSpec(str(path), tasks, settings)


def test_tvl1_shard_of_one_tiny_video_matches_opencv(tmp_path):
  video = str(tmp_path / 'v' / 'a.avi')
  fx.write_avi(video, fx.render(0, 3, num_frames=6))
  spec = _spec(tmp_path / 'toy-train1.tfrecord-00000-of-00001', [video], 'tvl1')
  result = shard_writer.write_shard(spec)
  assert result.num_examples == 1 and result.videos[0].num_frames == 6
  (record,) = fx.read_records([spec.path])
  gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in fx.read_avi(video)]
  tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
  reference = np.stack([tvl1.calc(gray[i], gray[i + 1], None) for i in range(5)])
  figures = fx.check_flow_accuracy(fx.decode_flow(record, BOUND), reference, BOUND)
  print('tvl1 flow error (synthetic, B=20):', figures)


def test_n_frames_give_n_minus_1_aligned_flow_fields(tmp_path):
  # Per-pair motions differ, so flow i can only match frames i -> i+1.
  shifts = [1, 3, 0, 2, 1, 3, 2]
  video = str(tmp_path / 'v' / 'shift.avi')
  fx.write_avi(video, fx.shifting_texture(shifts))
  spec = _spec(tmp_path / 'toy-train1.tfrecord-00000-of-00001', [video], 'farneback')
  shard_writer.write_shard(spec)
  (record,) = fx.read_records([spec.path])
  assert record.num_frames == len(shifts) + 1
  assert len(record.flow_x) == len(record.flow_y) == len(shifts)
  flow = fx.decode_flow(record, BOUND)[:, 8:-8, 8:-8]  # away from the borders and the seam
  measured = np.median(flow.reshape(len(shifts), -1, 2), axis=1)
  np.testing.assert_allclose(measured[:, 0], shifts, atol=0.3)
  np.testing.assert_allclose(measured[:, 1], 0, atol=0.3)


def test_bad_video_is_skipped_and_the_rest_written(tmp_path):
  good = str(tmp_path / 'good.avi')
  fx.write_avi(good, fx.render(1, 0, num_frames=4))
  single = str(tmp_path / 'single.avi')
  fx.write_avi(single, fx.render(1, 0, num_frames=4)[:1])
  spec = _spec(tmp_path / 'toy-train1.tfrecord-00000-of-00001', [single, good])
  seen = []
  result = shard_writer.write_shard(spec, on_video_done=seen.append)
  assert [(o.video_id, o.ok) for o in seen] == [('single', False), ('good', True)]
  assert 'too short: 1 decodable frame, need at least 2' in seen[0].reason
  assert [r.video_id for r in fx.read_records([spec.path])] == ['good']
  # The result is stored next to the shard and is what a rerun checks.
  assert shard_writer.load_result(spec.path).videos == result.videos
  sidecars = os.listdir(tmp_path / shard_writer.RESULTS_DIRNAME)
  assert sidecars == ['toy-train1-00000-of-00001.result.json']  # no temporary left, no .tfrecord
  assert glob.glob(str(tmp_path / '**' / '*.tfrecord*'), recursive=True) == [spec.path]
  with open(spec.path, 'ab') as f:  # a shard that changed since: not finished
    f.write(b'x')
  assert shard_writer.load_result(spec.path) is None


def test_unit_is_a_pure_function_of_a_picklable_spec(tmp_path):
  video = str(tmp_path / 'a.avi')
  fx.write_avi(video, fx.render(0, 5, num_frames=5))
  spec = _spec(tmp_path / 'one' / 'toy-train1.tfrecord-00000-of-00001', [video], 'dis')
  other = pickle.loads(pickle.dumps(spec))
  other = shard_writer.ShardSpec(str(tmp_path / 'two' / os.path.basename(spec.path)),
                                 other.videos, other.settings)
  shard_writer.write_shard(spec)
  shard_writer.write_shard(other)
  assert open(spec.path, 'rb').read() == open(other.path, 'rb').read()


def test_flow_is_clipped_to_the_bound():
  settings = shard_writer.EncodeSettings('farneback', 2.0, 0, 0, 1, 95)
  flow = np.zeros((16, 16, 2), np.float32)
  flow[..., 0] = 5.0   # beyond +B
  flow[..., 1] = -0.5
  x, y = shard_writer.encode_flow(flow, settings)
  assert jpeg_codec.decode_jpeg(x, 1).min() == 255
  decoded_y = record_schema.dequantise_flow(jpeg_codec.decode_jpeg(y, 1), 2.0)
  assert np.abs(decoded_y + 0.5).max() <= record_schema.flow_quantisation_step(2.0)


def test_results_round_trip_json(tmp_path):
  outcome = shard_writer.VideoOutcome('a/b', True, num_frames=3, notes=['standard'],
                                      warnings=['w'])
  result = shard_writer.ShardResult(str(tmp_path / 's'), 10, [outcome])
  assert shard_writer.ShardResult.from_json(result.to_json()) == result


def test_memory_does_not_grow_with_video_length_beyond_the_jpeg_bytes(tmp_path):
  import tracemalloc

  settings = shard_writer.EncodeSettings('farneback', BOUND, fx.HEIGHT, 0, 1, 95)
  flow = shard_writer.optical_flow.make_flow_algorithm('farneback')
  peaks = {}
  for n in (10, 60):
    path = str(tmp_path / f'{n}.avi')
    fx.write_avi(path, np.concatenate([fx.render(0, 1, num_frames=10)] * (n // 10)))
    task = shard_writer.VideoTask('v', 0, 'c', path, 'videos')
    tracemalloc.start()
    record, _, _ = shard_writer.encode_video(task, settings, flow)
    peaks[n] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stored = sum(map(len, record.frames + record.flow_x + record.flow_y))
  # 50 more frames cost their JPEG bytes (~150 KB here, plus list slots), far less than holding
  # 50 float flow fields (1.2 MB) or 50 RGB frames (460 KB) would.
  float_fields = 50 * fx.HEIGHT * fx.WIDTH * 2 * 4
  assert peaks[60] - peaks[10] < stored + float_fields // 8, (peaks, stored)
