"""Tests of the record format: flow quantisation, JPEG coding, serialisation, TFDS compatibility."""

import numpy as np
import pytest

from twostream_jax.data import record_schema
from twostream_jax.data import video_ops
from twostream_jax.prep import jpeg_codec
from tests.data import flow_reference


def test_quantisation_round_trip_within_half_step():
  bound = 20.0
  v = np.linspace(-bound, bound, 10001, dtype=np.float32)
  back = record_schema.dequantise_flow(record_schema.quantise_flow(v, bound), bound)
  assert np.abs(back - v).max() <= record_schema.flow_quantisation_step(bound) / 2 + 1e-5


def test_quantisation_clips_and_covers_full_range():
  q = record_schema.quantise_flow(np.array([-100.0, -20.0, 20.0, 100.0]), 20.0)
  assert q.tolist() == [0, 0, 255, 255]


def test_flip_of_quantised_levels_negates_exactly():
  q = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(record_schema.dequantise_flow(255 - q, 7.0), -record_schema.dequantise_flow(q, 7.0))


def test_jpeg_round_trip_rgb_and_gray():
  rng = np.random.default_rng(0)
  smooth = np.kron(rng.integers(0, 255, (2, 3, 3)), np.ones((16, 16, 1))).astype(np.uint8)
  back = jpeg_codec.decode_jpeg(jpeg_codec.encode_jpeg(smooth, 95))
  assert back.shape == smooth.shape
  assert np.abs(back.astype(int) - smooth).mean() < 3
  # Channel order survives (RGB in, RGB out): a pure red image stays red.
  red = np.zeros((16, 16, 3), np.uint8)
  red[..., 0] = 255
  assert jpeg_codec.decode_jpeg(jpeg_codec.encode_jpeg(red))[..., 0].mean() > 240
  gray = smooth[..., 0]
  assert jpeg_codec.decode_jpeg(jpeg_codec.encode_jpeg(gray), channels=1).shape == gray.shape


def _record(n=4, h=16, w=24):
  rng = np.random.default_rng(1)
  frames = [jpeg_codec.encode_jpeg(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for _ in range(n)]
  flow = [jpeg_codec.encode_jpeg(np.full((h, w), 10 * i, np.uint8)) for i in range(n - 1)]
  flow_y = [jpeg_codec.encode_jpeg(np.full((h, w), 200 - 10 * i, np.uint8)) for i in range(n - 1)]
  return record_schema.VideoRecord('C/v_1', 3, 'C', h, w, frames, flow, flow_y)


def test_record_needs_n_minus_one_flows():
  rec = _record()
  rec.flow_x = rec.flow_x[:-1]
  with pytest.raises(record_schema.RecordFormatError, match='4 frames need 3 flow'):
    record_schema.serialize_video_record(rec)


def test_serialize_parse_numpy_and_tf_agree():
  import tensorflow as tf
  rec = _record()
  data = record_schema.serialize_video_record(rec)
  back = record_schema.parse_video_record_numpy(data)
  assert back == rec
  parsed = record_schema.parse_video_record(tf.constant(data))
  assert int(parsed[record_schema.NUM_FRAMES]) == 4 and int(parsed[record_schema.LABEL]) == 3
  frames = tf.stack([video_ops.decode_frame(parsed[record_schema.FRAMES][i]) for i in (2, 0)])
  assert frames.shape == (2, 16, 24, 3)
  np.testing.assert_array_equal(frames[0].numpy(), jpeg_codec.decode_jpeg(rec.frames[2]))
  stack = flow_reference.decode_flow_stack(parsed[record_schema.FLOW_X], parsed[record_schema.FLOW_Y], [1, 2], 20.0)
  assert stack.shape == (16, 24, 4)
  # Interleaved channels: x of field 1, y of field 1, x of field 2, y of field 2.
  expected = record_schema.dequantise_flow(np.array([10, 190, 20, 180], np.uint8), 20.0)
  np.testing.assert_allclose(stack.mean(axis=(0, 1)), expected, atol=record_schema.flow_quantisation_step(20) )


def test_garbage_is_a_format_error():
  with pytest.raises(record_schema.RecordFormatError):
    record_schema.parse_video_record_numpy(b'not a record')


def test_tfds_reads_what_we_write(tmp_path):
  import tensorflow_datasets as tfds
  from twostream_jax.data import dataset_metadata
  import tensorflow as tf
  rec = _record()
  path = tmp_path / dataset_metadata.shard_filename('toy', 'train1', 0, 1)
  with tf.io.TFRecordWriter(str(path)) as w:
    w.write(record_schema.serialize_video_record(rec))
  tfds.folder_dataset.write_metadata(data_dir=str(tmp_path), features=record_schema.tfds_features(['A', 'B', 'C', 'D']),
                                     check_data=False)
  builder = tfds.builder_from_directory(str(tmp_path))
  assert builder.info.features[record_schema.LABEL].names == ['A', 'B', 'C', 'D']
  assert builder.info.splits['train1'].num_examples == 1
  ex = next(iter(builder.as_dataset(split='train1')))
  assert ex[record_schema.FRAMES].shape == (4, 16, 24, 3)
  assert ex[record_schema.FLOW_X].shape == (3, 16, 24, 1)
  assert ex[record_schema.VIDEO_ID].numpy() == b'C/v_1'
