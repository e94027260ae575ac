r"""Renders a video's RGB frames next to its optical flow in the standard colour wheel, to PNG or GIF.

From records written by make_tfrecords (the stored, quantised flow):
  python tools/render_flow.py --records_dir data/synthetic/records --video_id 'CheckerUp/...' \
      --output flow.png
From a video file (flow computed here with OpenCV):
  python tools/render_flow.py --video some.avi --flow_algorithm dis --output flow.gif

A PNG holds one row per shown time step: frame t | flow(t -> t+1) | flow minus its mean (the
paper's camera-motion compensation); a GIF animates the same rows. A colour-wheel legend is drawn
in the corner of the first flow picture.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import cv2
import numpy as np

from twostream_jax.flow import visualization

_RECORDS_DIR = flags.DEFINE_string('records_dir', '', 'Records folder (make_tfrecords output).')
_VIDEO_ID = flags.DEFINE_string('video_id', '', 'Video id in --records_dir (default: the first of '
                                'the first split).')
_VIDEO = flags.DEFINE_string('video', '', 'Instead of --records_dir: a video file.')
_FLOW_ALGORITHM = flags.DEFINE_enum('flow_algorithm', 'dis', ['tvl1', 'farneback', 'dis'],
                                   'Flow algorithm for --video.')
_NUM_STEPS = flags.DEFINE_integer('num_steps', 4, 'Time steps shown (equally spaced).')
_MAX_MAGNITUDE = flags.DEFINE_float('max_magnitude', 0.0, 'Flow magnitude (px) shown fully '
                                    'saturated; 0: the largest in the shown fields.')
_OUTPUT = flags.DEFINE_string('output', 'flow.png', 'Output .png or .gif.')


def frames_and_flows_from_records(records_dir: str, video_id: str):
  """Decoded frames `[N, H, W, 3]` and flows `[N-1, H, W, 2]` (px) of one stored video."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from twostream_jax.data import dataset_metadata  # pylint: disable=g-import-not-at-top
  from twostream_jax.data import record_schema
  from twostream_jax.prep import jpeg_codec
  metadata = dataset_metadata.load_metadata(records_dir)
  split = metadata.split_names()[0]
  video_id = video_id or metadata.video_ids(split)[0]
  for split in metadata.split_names():
    if video_id not in metadata.video_ids(split):
      continue
    for path in metadata.shard_files(records_dir, split):
      for serialized in tf.data.TFRecordDataset(path):
        record = record_schema.parse_video_record_numpy(serialized.numpy())
        if record.video_id == video_id:
          frames = np.stack([jpeg_codec.decode_jpeg(f) for f in record.frames])
          fx = np.stack([jpeg_codec.decode_jpeg(f, 1) for f in record.flow_x])
          fy = np.stack([jpeg_codec.decode_jpeg(f, 1) for f in record.flow_y])
          flows = record_schema.dequantise_flow(np.stack([fx, fy], -1), metadata.flow_bound_px)
          return video_id, frames, flows
  raise ValueError(f'video {video_id!r} is not in {records_dir}')


def frames_and_flows_from_video(path: str, algorithm: str):
  """Frames `[N, H, W, 3]` of a video file and their OpenCV flows `[N-1, H, W, 2]`."""
  from twostream_jax.flow import algorithms as optical_flow  # pylint: disable=g-import-not-at-top
  from twostream_jax.prep import video_decoding
  frames = np.stack(list(video_decoding.iter_frames(path, max_frames=64)))
  flow = optical_flow.make_flow_algorithm(algorithm)
  gray = [video_decoding.to_gray(f) for f in frames]
  flows = np.stack([flow.compute(a, b) for a, b in zip(gray[:-1], gray[1:])])
  return os.path.basename(path), frames, flows


def render_rows(frames: np.ndarray, flows: np.ndarray, num_steps: int,
                max_magnitude: float = 0.0) -> list[np.ndarray]:
  """One uint8 `[H, 3W, 3]` row per shown step: frame | flow | flow minus its mean."""
  steps = np.unique(np.linspace(0, len(flows) - 1, max(num_steps, 1)).round().astype(int))
  shown = flows[steps]
  scale = max_magnitude or float(np.hypot(shown[..., 0], shown[..., 1]).max())
  rows = []
  for i, t in enumerate(steps):
    flow = flows[t]
    centred = flow - flow.mean(axis=(0, 1), keepdims=True)
    colour = visualization.flow_to_color(flow, scale)
    if i == 0:
      size = max(16, min(flow.shape[:2]) // 3)
      colour[:size, :size] = visualization.wheel_legend(size)
    rows.append(np.concatenate([frames[t], colour,
                                visualization.flow_to_color(centred, scale)], axis=1))
  return rows


def write_output(rows: list[np.ndarray], path: str) -> None:
  """PNG: the rows stacked; GIF: the rows as frames (matplotlib's Pillow writer)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  if path.lower().endswith('.gif'):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    images = [Image.fromarray(r) for r in rows]
    images[0].save(path, save_all=True, append_images=images[1:], duration=250, loop=0)
  else:
    if not cv2.imwrite(path, cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR)):
      raise ValueError(f'could not write {path!r} (use a .png or .gif name)')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  if bool(_RECORDS_DIR.value) == bool(_VIDEO.value):
    raise app.UsageError('give exactly one of --records_dir and --video')
  from twostream_jax.prep import video_decoding  # pylint: disable=g-import-not-at-top
  try:
    if _RECORDS_DIR.value:
      name, frames, flows = frames_and_flows_from_records(_RECORDS_DIR.value, _VIDEO_ID.value)
    else:
      name, frames, flows = frames_and_flows_from_video(_VIDEO.value, _FLOW_ALGORITHM.value)
  except (ValueError, OSError, video_decoding.VideoDecodeError) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  write_output(render_rows(frames, flows, _NUM_STEPS.value, _MAX_MAGNITUDE.value), _OUTPUT.value)
  print(f'{name}: {len(frames)} frames, {len(flows)} flow fields -> {_OUTPUT.value}')


if __name__ == '__main__':
  app.run(main)
