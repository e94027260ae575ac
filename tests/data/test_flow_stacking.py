"""Flow stacks through the whole path (records -> pipeline -> device views) with flow that differs per
field and per video: the stacking order (field k at channels 2k, 2k + 1, in time order), the flip
sign with mean subtraction on, resize scaling, and every one of the 10 test crops against the
plain numpy reference (tests/data/flow_reference.py)."""

import functools

import jax
import numpy as np
import pytest
import tensorflow as tf

from twostream_jax.data import dataset_metadata
from twostream_jax.data import protocol_positions
from twostream_jax.data import record_schema
from twostream_jax.train import device_views
from tests import record_fixtures
from tests.data import flow_reference
from tests.data import pipelines
from tests.data.test_pipelines import _config

S = 24
L = 5
FRAME_COUNTS = [12, 5, 9]  # 5 frames = 4 fields < L: the last field repeats
K = 4  # test positions per video (the protocol's 25 only repeats the same rules)


def _views(config, batch):
  keys = (device_views.IMAGES, device_views.ROWS, device_views.BOXES, device_views.FLIPS, device_views.FLOW_STEP)
  fn = jax.jit(functools.partial(device_views.make_views, device_views.ViewSpec.from_data_config(config)))
  return np.asarray(fn({k: v for k, v in batch.items() if k in keys}))


@pytest.fixture(scope='module')
def distinct(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('distinct'))
  record_fixtures.write_tiny_dataset(out, num_frames=FRAME_COUNTS, test_per_class=1,
                                     distinct_flow=True)
  return out


@pytest.fixture(scope='module')
def small_frames(tmp_path_factory):
  """Frames of 20 x 30 < S: test crops of 20 x 20 resized to 24 x 24 (flow scaled by 1.2)."""
  out = str(tmp_path_factory.mktemp('small'))
  record_fixtures.write_tiny_dataset(out, num_frames=FRAME_COUNTS, train_per_class=1,
                                     test_per_class=1, height=20, width=30, distinct_flow=True)
  return out


def test_training_stacks_fields_in_time_order_from_one_video(distinct):
  config = _config(distinct, 'flow', flow_mean_subtraction='none')
  ds = pipelines.create_train_dataset(config, global_batch_size=6, seed=0)
  seen_flips, seen_short = set(), False
  for _, batch in zip(range(4), pipelines.numpy_batches(ds)):
    views = _views(config, batch)
    for e in range(6):
      x, y = views[e][..., 0::2], views[e][..., 1::2]
      assert np.abs(y - y[:1, :1]).max() < 1e-5  # y is constant
      video, field = record_fixtures.decode_field_code(y.mean(axis=(0, 1)))
      assert len(set(video)) == 1  # every field from one video
      v = int(video[0])
      assert v // 4 == batch['label'][e]  # the example's own video (4 train videos per class)
      m = FRAME_COUNTS[v % 3] - 1
      np.testing.assert_array_equal(field, np.minimum(field[0] + np.arange(L), m - 1))
      seen_short |= m < L
      # x of field t is the label's ramp + t / 4: channel 2k - channel 0 = +-(t_k - t_0) / 4,
      # negated by a flip.
      sign = -1.0 if batch['flips'][e, 0] else 1.0
      seen_flips.add(sign)
      step = record_schema.flow_quantisation_step(record_fixtures.FLOW_BOUND_PX)
      np.testing.assert_allclose(x - x[..., :1], np.broadcast_to(sign * (field - field[0]) / 4, x.shape),
                                 atol=2.5 * step)
  assert seen_flips == {-1.0, 1.0} and seen_short


def _records(data_dir, split):
  metadata = dataset_metadata.load_metadata(data_dir)
  records = {r.video_id: r for r in (record_schema.parse_video_record_numpy(x.numpy()) for x in
                                     tf.data.TFRecordDataset(metadata.shard_files(data_dir, split)))}
  return [records[v] for v in metadata.video_ids(split)]


def _reference_view(record, fields, box, flip, mean_subtraction):
  """The plain-numpy view: decode floats, crop, flip (negate x), resize (scale), subtract means."""
  stack = flow_reference.decode_flow_stack(record.flow_x, record.flow_y, fields,
                                           record_fixtures.FLOW_BOUND_PX)
  y0, x0, h, w = box
  view = stack[y0:y0 + h, x0:x0 + w]
  if flip:
    view = flow_reference.flip_flow(view)
  if (h, w) != (S, S):
    view = flow_reference.resize_flow(view, (S, S))
  if mean_subtraction == 'per_field':
    view = flow_reference.subtract_mean_flow(view)
  return view


@pytest.mark.parametrize('mean_subtraction', ['per_field', 'none'])
@pytest.mark.parametrize('frames', ['distinct', 'small_frames'])
def test_every_test_crop_equals_the_numpy_reference(frames, mean_subtraction, request):
  data_dir = request.getfixturevalue(frames)
  config = _config(data_dir, 'flow', flow_mean_subtraction=mean_subtraction)
  batches = list(pipelines.numpy_batches(pipelines.create_eval_dataset(
      config, split='test1', num_frames=K, num_crops=10, global_batch_size=2)))
  views = np.concatenate([_views(config, b) for b in batches]).reshape(-1, 10, S, S, 2 * L)
  video_index = np.concatenate([device_views.per_view(b['video_index'], K) for b in batches])  # per position
  records = _records(data_dir, 'test1')
  h, w = records[0].height, records[0].width
  side = min(S, h, w)
  corners = [((h - side) // 2, (w - side) // 2), (0, 0), (0, w - side), (h - side, 0),
             (h - side, w - side)]
  for v, record in enumerate(records):
    mine = views[video_index == v]
    assert mine.shape[0] == K
    m = record.num_frames - 1
    fields = protocol_positions.flow_indices(record.num_frames, K, L)
    for k in range(K):
      np.testing.assert_array_equal(fields[k], np.minimum(fields[k][0] + np.arange(L), m - 1))
      for c in range(10):
        y0, x0 = corners[c % 5]
        want = _reference_view(record, fields[k], (y0, x0, side, side), c >= 5, mean_subtraction)
        np.testing.assert_allclose(mine[k, c], want, atol=2e-4, rtol=1e-5,
                                   err_msg=f'video {v} position {k} crop {c}')
  if mean_subtraction == 'none' and frames == 'distinct':
    # The y codes name the video and the fields: time order, from the video's own record.
    real = video_index >= 0  # 3 videos in batches of 2: the last video slot is padding
    y = views[real][..., 1::2].mean(axis=(2, 3))  # [positions, 10, L]
    number, field = record_fixtures.decode_field_code(y)
    first_test_video = 12  # written after the 12 training videos
    np.testing.assert_array_equal(
        number, np.broadcast_to((first_test_video + video_index[real])[:, None, None], number.shape))
    positions = np.concatenate([protocol_positions.flow_indices(r.num_frames, K, L) for r in records])
    np.testing.assert_array_equal(field, np.broadcast_to(positions[:, None], field.shape))
