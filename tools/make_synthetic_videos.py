r"""Writes the synthetic action-video data set (UCF101 layout, MJPG .avi) used by the demo and tests.

Every class is (appearance family, motion type); see twostream_jax/prep/synthetic_videos.py. Prints the
classes, the video counts and the accuracy ceilings of appearance-only and motion-only classifiers.

    python tools/make_synthetic_videos.py --output_dir=data/synthetic
    python tools/make_synthetic_videos.py --output_dir=data/synthetic_pan --camera_pan

With --ucf101_shaped it writes instead a set shaped like UCF101 (twostream_jax/prep/ucf101_shaped.py):
--num_classes (101) x --groups (1..25) x --clips_per_group clips at 320x240, 25 fps, lengths drawn
in 3-10 s (--num_frames > 0: every clip that long, a short rehearsal), with classInd.txt and
trainlist0{1,2,3}.txt / testlist0{1,2,3}.txt split by groups as UCF101's are:

    python tools/make_synthetic_videos.py --ucf101_shaped --output_dir=data/ucf101_shaped \
        --groups=1,8 --num_frames=5 --long_clip_frames=300

Running it again with the same flags returns at once; another spec into the same folder needs
--overwrite.
"""

import sys
import time

from absl import app
from absl import flags

from twostream_jax.prep import synthetic_videos
from twostream_jax.prep import ucf101_shaped

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
_UCF101_SHAPED = flags.DEFINE_bool(
    'ucf101_shaped', False, 'Write a UCF101-shaped set (module docstring); --height, --width, '
    '--num_frames, --fps and --seed apply when given, the other synthetic-set flags do not.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 101, '--ucf101_shaped: classes.')
_GROUPS = flags.DEFINE_list('groups', [str(g) for g in range(1, 26)],
                            '--ucf101_shaped: group numbers (1..25) written for every class.')
_CLIPS_PER_GROUP = flags.DEFINE_integer('clips_per_group', 1, '--ucf101_shaped: clips a group.')
_LONG_CLIP_FRAMES = flags.DEFINE_integer(
    'long_clip_frames', 0, '--ucf101_shaped: the first split-1 test clip of class 0 gets this many '
    'frames (0: drawn like the others).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Replace a synthetic data set of another spec '
                               'in --output_dir. Folders this tool did not write are never touched.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _UCF101_SHAPED.value:
    return _main_ucf101_shaped()
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


def _main_ucf101_shaped():
  given = {name: flags.FLAGS[name].present for name in ('height', 'width', 'num_frames', 'fps',
                                                          'seed')}
  default = ucf101_shaped.Spec()
  try:
    spec = ucf101_shaped.Spec(
        num_classes=_NUM_CLASSES.value, groups=tuple(int(g) for g in _GROUPS.value),
        clips_per_group=_CLIPS_PER_GROUP.value,
        width=_WIDTH.value if given['width'] else default.width,
        height=_HEIGHT.value if given['height'] else default.height,
        fps=_FPS.value if given['fps'] else default.fps,
        num_frames=_NUM_FRAMES.value if given['num_frames'] else 0,
        long_clip_frames=_LONG_CLIP_FRAMES.value, seed=_SEED.value if given['seed'] else 0)
    start = time.perf_counter()
    result = ucf101_shaped.write_dataset(spec, _OUTPUT_DIR.value)
  except ValueError as e:
    sys.exit(f'make_synthetic_videos: {e}')
  lengths = ('every clip %d frames' % spec.num_frames if spec.num_frames else
             f'clip lengths drawn in {spec.min_seconds:g}-{spec.max_seconds:g} s')
  print(f'UCF101-shaped: {spec.num_classes} classes x groups {list(spec.groups)} x '
        f'{spec.clips_per_group} clip(s) = {result["num_videos"]} videos, {result["num_frames"]} '
        f'frames; {spec.width}x{spec.height} at {spec.fps} fps, {lengths}'
        + (f', one of {spec.long_clip_frames} frames' if spec.long_clip_frames else ''))
  action = 'written in' if result['generated'] else 'already there; checked in'
  print(f'{action} {time.perf_counter() - start:.1f} s: {result["videos_dir"]}, '
        f'{result["splits_dir"]} ({result["bytes"] / 1e6:.0f} MB)')


if __name__ == '__main__':
  app.run(main)
