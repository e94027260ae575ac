r"""Writes the synthetic action-video data set (UCF101 layout, MJPG .avi) used by the demo and tests.

Every class is (appearance family, motion type); see twostream_jax/prep/synthetic_videos.py. Prints the
classes, the video counts and the accuracy ceilings of appearance-only and motion-only classifiers.

    python tools/make_synthetic_videos.py --output_dir=data/synthetic
    python tools/make_synthetic_videos.py --output_dir=data/synthetic_pan --camera_pan

Running it again with the same flags returns at once; another spec into the same folder needs
--overwrite.
"""

import sys
import time

from absl import app
from absl import flags

from twostream_jax.prep import synthetic_videos

_DEFAULT = synthetic_videos.SyntheticSpec()

_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'Folder to write videos/, splits/ and synthetic_spec.json into: new, empty, '
    'or written earlier by this tool.', required=True)
_SEED = flags.DEFINE_integer('seed', _DEFAULT.seed, 'Data set seed; the same seed gives the same '
                             'frames.')
_CAMERA_PAN = flags.DEFINE_bool(
    'camera_pan', _DEFAULT.camera_pan, 'Pan the whole view at a random per-video velocity (x and y, '
    'each up to 2 px/frame at 120 px frame height, scaled with the height) on top of the object '
    'motion, so that mean flow subtraction matters.')
_TRAIN_PER_CLASS = flags.DEFINE_integer('train_per_class', _DEFAULT.train_per_class,
                                        'Training videos per class (trainlist01.txt).')
_TEST_PER_CLASS = flags.DEFINE_integer('test_per_class', _DEFAULT.test_per_class,
                                       'Test videos per class (testlist01.txt).')
_HEIGHT = flags.DEFINE_integer('height', _DEFAULT.height, 'Frame height in pixels (>= 48).')
_WIDTH = flags.DEFINE_integer('width', _DEFAULT.width, 'Frame width in pixels (>= 48).')
_NUM_FRAMES = flags.DEFINE_integer('num_frames', _DEFAULT.num_frames, 'Frames per video (>= 2).')
_FPS = flags.DEFINE_integer('fps', _DEFAULT.fps, 'Frame rate written into the .avi files.')
_APPEARANCES = flags.DEFINE_list(
    'appearances', list(_DEFAULT.appearances),
    f'Appearance families, from {list(synthetic_videos.APPEARANCES)}.')
_MOTIONS = flags.DEFINE_list(
    'motions', list(_DEFAULT.motions),
    f'Motion types, from {list(synthetic_videos.MOTIONS)}. Up/Down and ZoomIn/ZoomOut are time '
    'reversals of each other, so single frames tell nothing about them; Sway/Bob leak a little.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace a synthetic data set of another spec '
                               'in --output_dir. Folders this tool did not write are never touched.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    spec = synthetic_videos.SyntheticSpec(
        appearances=tuple(_APPEARANCES.value), motions=tuple(_MOTIONS.value), height=_HEIGHT.value,
        width=_WIDTH.value, num_frames=_NUM_FRAMES.value, train_per_class=_TRAIN_PER_CLASS.value,
        test_per_class=_TEST_PER_CLASS.value, camera_pan=_CAMERA_PAN.value, seed=_SEED.value,
        fps=_FPS.value)
    start = time.perf_counter()
    result = synthetic_videos.write_dataset(spec, _OUTPUT_DIR.value, overwrite=_OVERWRITE.value)
  except ValueError as e:
    sys.exit(f'make_synthetic_videos: {e}')
  seconds = time.perf_counter() - start
  names = result['class_names']
  print(f'classes ({len(names)}): ' + ', '.join(f'{i + 1} {n}' for i, n in enumerate(names)))
  print(f'videos: {result["num_train"]} train, {result["num_test"]} test; '
        f'{spec.width}x{spec.height}, {spec.num_frames} frames at {spec.fps} fps, '
        f'camera_pan={spec.camera_pan}, seed={spec.seed}')
  ceilings = synthetic_videos.accuracy_ceilings(spec)
  print('top-1 ceilings: ' + ', '.join(f'{k} {v:.1%}' for k, v in ceilings.items()))
  action = 'written in' if result['generated'] else 'already there; checked in'
  print(f'{action} {seconds:.1f} s: {result["videos_dir"]}, {result["splits_dir"]}')


if __name__ == '__main__':
  app.run(main)
