"""The ablation set: motion patterns that only several fields tell apart, and shared scenes."""

import numpy as np
import pytest

from twostream_jax.prep import ablation_videos


@pytest.mark.parametrize('num_frames', [11, 13, 14])
def test_every_10_field_stack_holds_a_reversal_and_single_fields_look_alike(num_frames):
  fields = num_frames - 1
  for seed in range(30):
    signs = {m: ablation_videos.velocity_signs(m, fields, np.random.default_rng(seed))
             for m in ablation_videos.MOTION_PATTERNS}
    assert np.all(signs['Steady'] == 1)
    for start in range(fields - 10 + 1):
      window = signs['Reverse'][start:start + 10]
      assert np.sum(window[1:] != window[:-1]) == 1
      zig = signs['Zigzag'][start:start + 10]
      assert np.sum(zig[1:] != zig[:-1]) >= 2
    for m in signs:
      assert set(np.abs(signs[m])) == {1.0}  # every field: the same speed, only the sign differs


def test_classes_of_one_scene_share_it_and_the_camera_zigzags():
  spec = ablation_videos.AblationSpec(appearances=('Checker', 'Dots'), height=48, width=64,
                                      num_frames=8)
  names = ablation_videos.class_names(spec)
  steady = names.index('CheckerSteady')
  frames, truth = ablation_videos.render_video(spec, steady, 3)
  assert frames.shape == (8, 48, 64, 3) and frames.dtype == np.uint8
  _, other = ablation_videos.render_video(spec, names.index('DotsSteady'), 3)
  np.testing.assert_allclose(truth['center_xy'], other['center_xy'])  # only the family differs
  disc = np.diff(truth['center_xy'] + truth['camera_xy'], axis=0)  # world motion: steady
  np.testing.assert_allclose(disc, np.broadcast_to(disc[:1], disc.shape), atol=1e-9)
  camera = np.diff(truth['camera_xy'], axis=0)
  assert np.any(np.sum(camera[1:] * camera[:-1], axis=1) < 0)  # the camera reverses
  with pytest.raises(ValueError, match='motions'):
    ablation_videos.AblationSpec(motions=('Up',))


def test_write_dataset_writes_the_ucf101_layout_once(tmp_path):
  spec = ablation_videos.AblationSpec(appearances=('Solid',), motions=('Steady', 'Zigzag'),
                                      height=48, width=48, num_frames=4, train_per_class=2,
                                      test_per_class=1)
  out = ablation_videos.write_dataset(spec, str(tmp_path / 'set'))
  assert out['generated'] and (out['num_train'], out['num_test']) == (4, 2)
  train = (tmp_path / 'set' / 'splits' / 'trainlist01.txt').read_text().split('\n')
  assert train[0] == 'SolidSteady/v_SolidSteady_g02_c01.avi 1'
  assert not ablation_videos.write_dataset(spec, str(tmp_path / 'set'))['generated']
