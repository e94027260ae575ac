"""Synthetic action videos in the UCF101 layout, for the demo and for tests without a real data set.

Every class is a pair (appearance family, motion type) of a factorial design
(`prep.synthetic_classes`): a patterned disc moves over a textured background
(`prep.synthetic_rendering`), so single frames (spatial stream) and flow (temporal stream) each
reach only a ceiling below 100% (`accuracy_ceilings`), while both together can reach 100%.

`write_dataset` writes the data set as UCF101 ships (but MJPG .avi):
    <out>/videos/<ClassName>/v_<ClassName>_gXX_cYY.avi
    <out>/splits/classInd.txt, trainlist01.txt, testlist01.txt
    <out>/synthetic_spec.json
Test videos use groups g01.. and training videos the following groups, so that no test scene is
seen in training. numpy + cv2 only: no TensorFlow, no JAX. Design: docs/design_notes.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from typing import Any

import cv2
import numpy as np

from twostream_jax.prep.synthetic_classes import (APPEARANCES, MOTIONS, SyntheticSpec,
                                                  accuracy_ceilings, class_factors, class_names)
from twostream_jax.prep.synthetic_rendering import (render_video, render_video_with_truth,
                                                    video_truth)

# The public API, as imported from this module by the demo, the tools and the tests.
__all__ = ['APPEARANCES', 'MOTIONS', 'SPEC_FILENAME', 'SyntheticSpec', 'accuracy_ceilings',
           'class_factors', 'class_names', 'clip_seed', 'render_video', 'render_video_with_truth',
           'split_videos', 'video_relpath', 'video_truth', 'write_avi', 'write_dataset']

# Bump when rendering (`synthetic_rendering`) changes, so that `write_dataset` regenerates an
# existing folder.
GENERATOR_VERSION = 2
CLIPS_PER_GROUP = 5
SPEC_FILENAME = 'synthetic_spec.json'
SPLIT_INDEX = 1  # one split, written as trainlist01.txt / testlist01.txt


def split_videos(spec: SyntheticSpec) -> dict[str, list[tuple[int, int, int]]]:
  """{'train', 'test'} -> (class_index, group, clip) of every video; test groups come first."""
  test_groups = math.ceil(spec.test_per_class / CLIPS_PER_GROUP)
  out: dict[str, list[tuple[int, int, int]]] = {'train': [], 'test': []}
  for c in range(len(class_factors(spec))):
    for split, count, first_group in (('test', spec.test_per_class, 1),
                                      ('train', spec.train_per_class, test_groups + 1)):
      for k in range(count):
        out[split].append((c, first_group + k // CLIPS_PER_GROUP, 1 + k % CLIPS_PER_GROUP))
  return out


def clip_seed(group: int, clip: int) -> int:
  """The `video_seed` that `write_dataset` renders clip `clip` of group `group` with."""
  return group * 100 + clip


def video_relpath(spec: SyntheticSpec, class_index: int, group: int, clip: int) -> str:
  """'ClassName/v_ClassName_gXX_cYY.avi', relative to the videos folder (as in UCF101 lists)."""
  name = class_names(spec)[class_index]
  return f'{name}/v_{name}_g{group:02d}_c{clip:02d}.avi'


def write_avi(frames: np.ndarray, path: str, fps: int) -> None:
  """Writes frames [T, H, W, 3] uint8 RGB as MJPG .avi (OpenCV's own encoder, quality 90)."""
  _, h, w, _ = frames.shape
  fourcc = cv2.VideoWriter_fourcc(*'MJPG')
  writer = cv2.VideoWriter(path, cv2.CAP_OPENCV_MJPEG, fourcc, float(fps), (w, h))
  if not writer.isOpened():  # an OpenCV build without the built-in writer
    writer = cv2.VideoWriter(path, fourcc, float(fps), (w, h))
  if not writer.isOpened():
    raise RuntimeError(f'OpenCV cannot write MJPG .avi files ({path}); install '
                       'opencv-contrib-python-headless as listed in setup.cfg.')
  writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 90)
  for frame in frames:
    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
  writer.release()


def _stored_spec(spec: SyntheticSpec) -> dict[str, Any]:
  return {'generator_version': GENERATOR_VERSION, 'spec': spec.to_dict()}


def _is_complete(spec: SyntheticSpec, root: str, meta: dict[str, Any]) -> bool:
  if not meta.get('complete') or {k: meta.get(k) for k in ('generator_version', 'spec')} != (
      _stored_spec(spec)):
    return False
  splits = os.path.join(root, 'splits')
  names = ['classInd.txt', f'trainlist{SPLIT_INDEX:02d}.txt', f'testlist{SPLIT_INDEX:02d}.txt']
  if not all(os.path.isfile(os.path.join(splits, n)) for n in names):
    return False
  videos = [v for vs in split_videos(spec).values() for v in vs]
  return all(os.path.isfile(os.path.join(root, 'videos', video_relpath(spec, *v))) for v in videos)


def _write_json(path: str, content: dict[str, Any]) -> None:
  with open(path + '.tmp', 'w') as f:
    json.dump(content, f, indent=2, sort_keys=True)
  os.replace(path + '.tmp', path)  # atomic: a reader never sees half a file


def write_dataset(spec: SyntheticSpec, out_dir: str, *, overwrite: bool = False) -> dict[str, Any]:
  """Writes the videos and UCF101-style split files; a no-op when the same data set is there.

  Args:
    spec: what to generate.
    out_dir: target folder: new, empty, or written earlier by this function.
    overwrite: replace a complete synthetic data set of another spec. Folders this function did not
      write are never touched.

  Returns:
    {'root', 'videos_dir', 'splits_dir': paths, 'class_names': list, 'num_train', 'num_test': ints,
     'generated': whether videos were written now}.

  Raises:
    ValueError: out_dir holds something else, or another synthetic data set and not overwrite.
  """
  root = os.path.abspath(out_dir)
  videos_dir, splits_dir = os.path.join(root, 'videos'), os.path.join(root, 'splits')
  meta_path = os.path.join(root, SPEC_FILENAME)
  videos = split_videos(spec)
  result = {'root': root, 'videos_dir': videos_dir, 'splits_dir': splits_dir,
            'class_names': class_names(spec), 'num_train': len(videos['train']),
            'num_test': len(videos['test']), 'generated': False}
  if os.path.isfile(root):
    raise ValueError(f'--output_dir {root} is a file; give a folder.')
  if os.path.isdir(root) and os.listdir(root):
    if not os.path.isfile(meta_path):
      raise ValueError(f'{root} is not empty and holds no {SPEC_FILENAME}, so it is not a synthetic '
                       'data set written here; choose a new or empty folder.')
    with open(meta_path) as f:
      meta = json.load(f)
    if _is_complete(spec, root, meta):
      return result
    same_spec = {k: meta.get(k) for k in ('generator_version', 'spec')} == _stored_spec(spec)
    if meta.get('complete') and not same_spec and not overwrite:
      raise ValueError(f'{root} holds a synthetic data set of another spec ({meta.get("spec")}); '
                       'pass overwrite=True (--overwrite) to replace it, or choose another folder.')
    # An interrupted write, a lost file or a replaced spec: remove only what this function writes.
    for path in (videos_dir, splits_dir):
      shutil.rmtree(path, ignore_errors=True)
  os.makedirs(splits_dir, exist_ok=True)
  _write_json(meta_path, {**_stored_spec(spec), 'complete': False})
  names = class_names(spec)
  for name in names:
    os.makedirs(os.path.join(videos_dir, name), exist_ok=True)
  for split in ('test', 'train'):
    for class_index, group, clip in videos[split]:
      frames = render_video(spec, class_index, clip_seed(group, clip))
      write_avi(frames, os.path.join(videos_dir, video_relpath(spec, class_index, group, clip)),
                spec.fps)
  with open(os.path.join(splits_dir, 'classInd.txt'), 'w') as f:
    f.writelines(f'{i + 1} {name}\n' for i, name in enumerate(names))
  with open(os.path.join(splits_dir, f'trainlist{SPLIT_INDEX:02d}.txt'), 'w') as f:
    f.writelines(f'{video_relpath(spec, *v)} {v[0] + 1}\n' for v in videos['train'])
  with open(os.path.join(splits_dir, f'testlist{SPLIT_INDEX:02d}.txt'), 'w') as f:
    f.writelines(f'{video_relpath(spec, *v)}\n' for v in videos['test'])
  _write_json(meta_path, {**_stored_spec(spec), 'complete': True,
                          'class_names': names, 'ceilings': accuracy_ceilings(spec)})
  return {**result, 'generated': True}
