"""Tests of rawframes conversion: off-by-one layouts, byte copies, re-quantisation, resizing."""

import json
import os

import cv2
import numpy as np
import pytest

from tests import make_tfrecords_fixtures as fx
from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import rawframes
from twostream_jax.prep import shard_writer
from twostream_jax.prep import video_decoding

BOUND = 20.0


def _flow_field(seed, h=fx.HEIGHT, w=fx.WIDTH):
  """A smooth random flow field [H, W, 2] within +-8 px (what no algorithm would compute here)."""
  rng = np.random.default_rng(seed)
  return cv2.resize(rng.uniform(-8, 8, (3, 4, 2)).astype(np.float32), (w, h))


def make_folder(folder, num_frames=5, num_x=None, num_y=None, frame_base=1, flow_base=1,
                skip_frame=None, first_flow_zero=False, prefix='flow_', bound=BOUND, seed=0):
  """Writes a rawframes folder; returns the frames and flows it holds (file order)."""
  os.makedirs(folder, exist_ok=True)
  frames = fx.render(seed % 2, seed, num_frames=max(num_frames, 2))[:num_frames]
  for i, frame in enumerate(frames):
    if i != skip_frame:
      with open(os.path.join(folder, f'img_{i + frame_base:05d}.jpg'), 'wb') as f:
        f.write(jpeg_codec.encode_jpeg(frame))
  num_x = num_frames - 1 if num_x is None else num_x
  num_y = num_x if num_y is None else num_y
  flows = [_flow_field(100 * seed + i) for i in range(max(num_x, num_y))]
  if first_flow_zero:
    flows[0] = np.zeros_like(flows[0])
  for axis, count in ((0, num_x), (1, num_y)):
    for i in range(count):
      q = record_schema.quantise_flow(flows[i][..., axis], bound)
      name = f'{prefix}{"xy"[axis]}_{i + flow_base:05d}.jpg'
      with open(os.path.join(folder, name), 'wb') as f:
        f.write(jpeg_codec.encode_jpeg(q))
  return frames, flows


@pytest.mark.parametrize('kwargs, frames, flows, notes', [
    ({}, 5, 4, ['standard']),
    ({'frame_base': 0, 'flow_base': 0}, 5, 4, ['frames_from_0', 'flows_from_0', 'standard']),
    ({'flow_base': 0}, 5, 4, ['flows_from_0', 'standard']),
    ({'num_x': 5}, 5, 4, ['n_flows_last_dropped']),
    ({'num_x': 5, 'first_flow_zero': True}, 5, 4, ['n_flows_first_padding_dropped']),
    ({'num_x': 4, 'num_y': 3}, 4, 3, ['fewer_flows_than_frames', 'flow_x_y_counts_differ']),
    ({'num_frames': 3, 'num_x': 5}, 3, 2, ['more_flows_than_frames']),
    ({'num_x': 2}, 3, 2, ['fewer_flows_than_frames']),
    ({'skip_frame': 3}, 3, 2, ['more_flows_than_frames', 'numbering_gap']),
    ({'prefix': ''}, 5, 4, ['standard']),  # x_00001.jpg / y_00001.jpg
])
def test_layout_rule(tmp_path, kwargs, frames, flows, notes):
  make_folder(str(tmp_path), **kwargs)
  plan = rawframes.plan_folder(str(tmp_path))
  assert (len(plan.frames), len(plan.flow_x), len(plan.flow_y)) == (frames, flows, flows)
  assert plan.notes == sorted(notes)
  if 'first_flow_zero' in kwargs:  # the padded field is dropped: flow k is the file after it
    assert plan.flow_x[0] == 'flow_x_00002.jpg'
  else:
    base = kwargs.get('flow_base', 1)
    assert plan.flow_x[0] == f'{kwargs.get("prefix", "flow_")}x_{base:05d}.jpg'


def test_max_frames_and_too_short(tmp_path):
  make_folder(str(tmp_path / 'a'))
  plan = rawframes.plan_folder(str(tmp_path / 'a'), max_frames=3)
  assert (len(plan.frames), len(plan.flow_x)) == (3, 2)
  make_folder(str(tmp_path / 'b'), num_frames=1, num_x=1)
  with pytest.raises(video_decoding.VideoDecodeError, match='too short'):
    rawframes.plan_folder(str(tmp_path / 'b'))
  make_folder(str(tmp_path / 'c'), num_x=0)
  with pytest.raises(video_decoding.VideoDecodeError, match='no flow images'):
    rawframes.plan_folder(str(tmp_path / 'c'))


def test_jpeg_header():
  gray = jpeg_codec.encode_jpeg(np.zeros((7, 9), np.uint8))
  rgb = jpeg_codec.encode_jpeg(np.zeros((7, 9, 3), np.uint8))
  assert rawframes.jpeg_header(gray) == (7, 9, 1)
  assert rawframes.jpeg_header(rgb) == (7, 9, 3)
  assert rawframes.jpeg_header(b'\x89PNG....') is None


def _read(folder, **kwargs):
  args = {'short_side': fx.HEIGHT, 'flow_bound_px': BOUND, 'source_flow_bound_px': BOUND,
          'jpeg_quality': 95, **kwargs}
  return rawframes.read_video(folder, **args)


def test_matching_files_are_copied_byte_for_byte(tmp_path):
  folder = str(tmp_path)
  make_folder(folder, num_x=5)  # one flow too many: the last is dropped
  video = _read(folder)
  assert (video.height, video.width) == (fx.HEIGHT, fx.WIDTH)
  for i in range(5):
    assert video.frames[i] == open(os.path.join(folder, f'img_{i + 1:05d}.jpg'), 'rb').read()
  for i in range(4):
    assert video.flow_x[i] == open(os.path.join(folder, f'flow_x_{i + 1:05d}.jpg'), 'rb').read()
    assert video.flow_y[i] == open(os.path.join(folder, f'flow_y_{i + 1:05d}.jpg'), 'rb').read()
  assert video.notes == ['n_flows_last_dropped']


def test_other_bound_is_requantised(tmp_path):
  folder = str(tmp_path)
  make_folder(folder, bound=10.0)
  video = _read(folder, source_flow_bound_px=10.0)
  assert 'flow_requantised' in video.notes
  for i in range(4):
    source = record_schema.dequantise_flow(
        cv2.imread(os.path.join(folder, f'flow_x_{i + 1:05d}.jpg'), cv2.IMREAD_GRAYSCALE), 10.0)
    stored = record_schema.dequantise_flow(jpeg_codec.decode_jpeg(video.flow_x[i], 1), BOUND)
    # One rounding to the new grid (half a step of B=20) plus the new JPEG's error (2 levels).
    step = record_schema.flow_quantisation_step(BOUND)
    assert np.mean(np.abs(stored - source) <= step / 2 + 2 * step) >= 0.99


def test_other_size_is_resized_and_flow_scaled(tmp_path):
  folder = str(tmp_path)
  frames, flows = make_folder(folder)
  video = _read(folder, short_side=24)  # 48x64 -> 24x32: flow values halve
  assert (video.height, video.width) == (24, 32)
  assert {'frames_reencoded', 'flow_resized'} <= set(video.notes)
  x = record_schema.dequantise_flow(jpeg_codec.decode_jpeg(video.flow_x[1], 1), BOUND)
  expected = cv2.resize(flows[1][..., 0], (32, 24), interpolation=cv2.INTER_LINEAR) / 2
  step = record_schema.flow_quantisation_step(BOUND)
  # The source JPEG + quantisation errors, halved by the scaling, plus one new quantisation.
  assert np.mean(np.abs(x - expected) <= 3 * step) >= 0.99


def test_rawframes_folder_converts_with_variants_reported(tmp_path):
  raw = tmp_path / 'raw'
  variants = {'Alpha/standard': {}, 'Alpha/zero_based': {'frame_base': 0, 'flow_base': 0},
              'Alpha/n_flows': {'num_x': 5}, 'Beta/padded': {'num_x': 5, 'first_flow_zero': True},
              'Beta/xy_differ': {'num_x': 4, 'num_y': 3}, 'Beta/one_frame': {'num_frames': 1,
                                                                             'num_x': 1}}
  expected_flow = {}
  for seed, (video_id, kwargs) in enumerate(variants.items()):
    make_folder(str(raw / video_id), seed=seed, **kwargs)
    plan = rawframes.plan_folder(str(raw / video_id)) if video_id != 'Beta/one_frame' else None
    if plan:
      expected_flow[video_id] = [open(raw / video_id / n, 'rb').read() for n in plan.flow_x]
  out = str(tmp_path / 'out')
  settings = shard_writer.EncodeSettings('rawframes', BOUND, fx.HEIGHT, 0, 1, 95, BOUND)
  options = dataset_writer.WriterOptions(
      source_root=str(raw), source_kind='rawframes', splits_dir=None, output_dir=out,
      dataset_name='raw', settings=settings, num_workers=1, max_failures=1, test_fraction=0.34,
      progress=False)
  summary = dataset_writer.run(options, dataset_writer.prepare(options))
  assert summary.complete and summary.videos_written == 5
  assert [f['video_id'] for f in summary.failures] == ['Beta/one_frame']
  meta = dataset_metadata.load_metadata(out)
  assert meta.flow_algorithm == 'rawframes'
  # Frame folders carry no frame rate: unknown (predict says so).
  assert meta.extra[dataset_metadata.SOURCE_FPS_KEY] == {}
  assert dataset_metadata.stored_frame_rate(meta) == 0.0
  assert meta.extra['rawframes_layouts'] == {
      'flow_x_y_counts_differ': 1, 'fewer_flows_than_frames': 1, 'flows_from_0': 1,
      'frames_from_0': 1, 'n_flows_first_padding_dropped': 1, 'n_flows_last_dropped': 1,
      'standard': 2}
  records = {r.video_id: r for r in fx.read_records(
      sorted(os.path.join(out, n) for n in os.listdir(out) if '.tfrecord-' in n))}
  assert sorted(records) == sorted(expected_flow)
  for video_id, flow_x in expected_flow.items():
    assert records[video_id].flow_x == flow_x  # copied, not recomputed
    assert records[video_id].num_frames == len(flow_x) + 1
  with open(os.path.join(out, dataset_writer.FAILURES_FILENAME)) as f:
    assert 'too short' in json.load(f)['failed'][0]['reason']
