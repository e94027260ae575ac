"""Tiny but real record folders for tests: `write_tiny_dataset` writes shards + metadata in < 1 s.

The records are what `tools/make_tfrecords.py` writes (`record_schema.serialize_video_record` in
TFRecord shards named by `dataset_metadata.shard_filename`, plus `twostream_metadata.json`), with
synthetic content chosen so that the label is learnable from either modality:

  * frames: smooth random colour fields (a 4 x 5 grid of random colours, bilinearly upsampled),
    shifted right by one pixel per frame, with the channel `label % 3` brightened by 60;
  * flow (`fixture_flow`, the same for every field of a video): x is a horizontal ramp whose offset
    and slope both grow with the label, `x[i, j] = (label + 1) * (1 + (j - (W - 1) / 2) / W)`, so
    that the label survives mean flow subtraction (the slope) and is also readable without it (the
    offset); y is the constant `-(label + 1) / 2`.

With `distinct_flow=True`, the flow differs per field and per video, so that the order in which
fields are stacked can be checked: field t of the video written v-th has y constant at the
quantisation level `field_code(v, t)` (exact through JPEG: a constant block), and x the ramp above
plus a per-field offset; `decode_field_code` inverts it.

Layout: two partitions, 'train1_test2' (train_per_class videos per class) and 'test1_train2'
(test_per_class per class); splits train1 = test2 = 'train1_test2' and test1 = train2 =
'test1_train2'. Video ids are '<ClassName>/v_<ClassName>_gXX_c01' with class names 'Class0', ...;
within a partition, videos are in class order and split into `shards_per_partition` contiguous
shards (shards may be empty when a partition has fewer videos than shards), so that the partition's
id list is the order in which its shards hold the videos.
"""

from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np

from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.prep import jpeg_codec

TRAIN_PARTITION = 'train1_test2'
TEST_PARTITION = 'test1_train2'
SPLITS = {'train1': [TRAIN_PARTITION], 'test1': [TEST_PARTITION],
          'train2': [TEST_PARTITION], 'test2': [TRAIN_PARTITION]}
FLOW_BOUND_PX = 20.0


def class_name(label: int) -> str:
  return f'Class{label}'


def fixture_flow(label: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """The flow field stored for every frame pair of a video of class `label`, before quantisation.

  Returns:
    (x, y): float32 `[H, W]` each, in pixels (see the module docstring).
  """
  ramp = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / width
  x = np.broadcast_to((label + 1) * (1 + ramp), (height, width)).astype(np.float32)
  y = np.full((height, width), -(label + 1) / 2, np.float32)
  return x, y


MAX_FIELDS = 11  # distinct_flow: at most this many fields (12 frames) per video


def field_code(video_number: int, field: int) -> int:
  """The quantised y level of field `field` of the video written `video_number`-th (distinct_flow)."""
  if field >= MAX_FIELDS:
    raise ValueError(f'distinct_flow supports videos of up to {MAX_FIELDS + 1} frames')
  return 2 + (video_number * MAX_FIELDS + field) % 250


def decode_field_code(y_px: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(video number, field) int arrays from y values in pixels (no resize, no mean subtraction).

  Exact for the first 22 videos (250 levels / MAX_FIELDS); later numbers wrap around.
  """
  q = np.round(np.asarray(y_px) / record_schema.flow_quantisation_step(FLOW_BOUND_PX) + 127.5).astype(int)
  return divmod(q - 2, MAX_FIELDS)


def distinct_flow_fields(label: int, video_number: int, field: int, height: int,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
  """Flow field `field` of a video (distinct_flow): x the ramp of `fixture_flow` plus field / 4, y coded."""
  x, _ = fixture_flow(label, height, width)
  y_level = field_code(video_number, field)
  y = np.full((height, width), (y_level - 127.5) * record_schema.flow_quantisation_step(FLOW_BOUND_PX), np.float32)
  return (x + field / 4).astype(np.float32), y


def fixture_frames(rng: np.random.Generator, label: int, num_frames: int, height: int,
                   width: int) -> np.ndarray:
  """Frames of one video: uint8 `[N, H, W, 3]` (see the module docstring)."""
  grid = rng.uniform(30, 170, size=(4, 5, 3)).astype(np.float32)
  base = cv2.resize(grid, (width + num_frames, height), interpolation=cv2.INTER_LINEAR)
  base[..., label % 3] += 60
  base = np.clip(base, 0, 255).astype(np.uint8)
  # Frame t shows the window starting t pixels from the right: content moves right over time.
  return np.stack([base[:, num_frames - t:num_frames - t + width] for t in range(num_frames)])


def _per_class(value: int | Sequence[int], num_classes: int) -> list[int]:
  if isinstance(value, int):
    return [value] * num_classes
  if len(value) != num_classes:
    raise ValueError(f'need one count per class ({num_classes}), got {list(value)}')
  return list(value)


def write_tiny_dataset(out_dir: str, *, num_classes: int = 3,
                       train_per_class: int | Sequence[int] = 4,
                       test_per_class: int | Sequence[int] = 2,
                       num_frames: int | Sequence[int] = 12, height: int = 32, width: int = 40,
                       shards_per_partition: int = 2, seed: int = 0, name: str = 'tiny',
                       jpeg_quality: int = 95, distinct_flow: bool = False) -> dataset_metadata.DatasetMetadata:
  """Writes a tiny records folder (see the module docstring) and returns its metadata.

  Args:
    out_dir: folder to write (created if needed).
    num_classes: number of classes.
    train_per_class: videos per class in 'train1_test2' (an int, or one count per class for an
      imbalanced set).
    test_per_class: videos per class in 'test1_train2' (likewise).
    num_frames: frames per video, or a sequence cycled over the videos in writing order (train
      partition first), e.g. to include videos shorter than a flow stack.
    height, width: frame size in pixels.
    shards_per_partition: shards per partition.
    seed: content seed.
    name: dataset name (shard file prefix).
    jpeg_quality: JPEG quality of frames and flow.
    distinct_flow: flow that differs per field and per video (module docstring); video numbers
      count all videos in writing order (train partition first).

  Returns:
    The metadata written to `out_dir`.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  os.makedirs(out_dir, exist_ok=True)
  rng = np.random.default_rng(seed)
  frame_counts = [num_frames] if isinstance(num_frames, int) else list(num_frames)
  counts = {TRAIN_PARTITION: _per_class(train_per_class, num_classes),
            TEST_PARTITION: _per_class(test_per_class, num_classes)}
  flows = {}  # label -> encoded (x, y): identical for every field, so encode once per class.
  partitions, video_number = {}, 0
  for partition, per_class in counts.items():
    ids, records = [], []
    group = 1 if partition == TEST_PARTITION else 1 + max(counts[TEST_PARTITION])
    for label in range(num_classes):
      for k in range(per_class[label]):
        cname = class_name(label)
        video_id = f'{cname}/v_{cname}_g{group + k:02d}_c01'
        n = frame_counts[video_number % len(frame_counts)]
        video_number += 1
        if label not in flows:
          fx, fy = fixture_flow(label, height, width)
          flows[label] = (jpeg_codec.encode_jpeg(record_schema.quantise_flow(fx, FLOW_BOUND_PX), jpeg_quality),
                          jpeg_codec.encode_jpeg(record_schema.quantise_flow(fy, FLOW_BOUND_PX), jpeg_quality))
        frames = fixture_frames(rng, label, n, height, width)
        if distinct_flow:
          fields = [distinct_flow_fields(label, video_number - 1, t, height, width) for t in range(n - 1)]
          flow_x = [jpeg_codec.encode_jpeg(record_schema.quantise_flow(fx, FLOW_BOUND_PX), jpeg_quality) for fx, _ in fields]
          flow_y = [jpeg_codec.encode_jpeg(record_schema.quantise_flow(fy, FLOW_BOUND_PX), jpeg_quality) for _, fy in fields]
        else:
          flow_x, flow_y = [flows[label][0]] * (n - 1), [flows[label][1]] * (n - 1)
        records.append(record_schema.VideoRecord(
            video_id=video_id, label=label, label_name=cname, height=height, width=width,
            frames=[jpeg_codec.encode_jpeg(f, jpeg_quality) for f in frames],
            flow_x=flow_x, flow_y=flow_y))
        ids.append(video_id)
    partitions[partition] = ids
    for shard, chunk in enumerate(np.array_split(np.arange(len(records)), shards_per_partition)):
      path = os.path.join(out_dir, dataset_metadata.shard_filename(name, partition, shard, shards_per_partition))
      with tf.io.TFRecordWriter(path) as writer:
        for i in chunk:
          writer.write(record_schema.serialize_video_record(records[i]))
  metadata = dataset_metadata.DatasetMetadata(
      name=name, class_names=[class_name(c) for c in range(num_classes)], partitions=partitions,
      num_shards={p: shards_per_partition for p in partitions}, splits=dict(SPLITS),
      flow_algorithm='synthetic', flow_bound_px=FLOW_BOUND_PX, short_side=min(height, width),
      jpeg_quality=jpeg_quality, command_line='tests/record_fixtures.py write_tiny_dataset')
  dataset_metadata.save_metadata(metadata, out_dir)
  return metadata
