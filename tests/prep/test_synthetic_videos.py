"""Tests of the synthetic video generator: layout, decoding, determinism, motion, pan, ceilings."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from twostream_jax.prep import synthetic_videos
from tests.make_tfrecords_fixtures import read_avi

# Small and fast but with the default classes; Farneback needs the default frame size to see the
# disc well, so flow tests use render_video (no files) at the default size.
TINY = synthetic_videos.SyntheticSpec(height=72, width=96, num_frames=8, train_per_class=6, test_per_class=2)
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _flow(frames, t):
  """Farneback flow [H, W, 2] from frame t to t+1."""
  prev, nxt = (cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY) for i in (t, t + 1))
  return cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)


def _psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64))**2)
  return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('synthetic'))
  return root, synthetic_videos.write_dataset(TINY, root)


def test_ceilings_follow_the_factorial_design():
  for appearances, motions in ((('Checker', 'Dots', 'Stripes'), ('Up', 'Down')),
                               (('Dots', 'Rings'), ('Up', 'ZoomIn', 'Sway')),
                               (('Stripes',), ('ZoomIn', 'ZoomOut')),
                               (('Checker', 'Dots'), ('Bob',))):
    spec = synthetic_videos.SyntheticSpec(appearances=appearances, motions=motions)
    ceilings = synthetic_videos.accuracy_ceilings(spec)
    # Knowing the appearance leaves a guess among len(motions) equally frequent classes, and so on.
    assert ceilings['appearance_only'] == pytest.approx(1 / len(motions))
    assert ceilings['motion_only'] == pytest.approx(1 / len(appearances))
    assert ceilings['both'] == 1.0
    assert ceilings['chance'] == pytest.approx(1 / (len(appearances) * len(motions)))
  default = synthetic_videos.accuracy_ceilings(synthetic_videos.SyntheticSpec())
  assert default['appearance_only'] < 1 and default['motion_only'] < 1


def test_class_names_are_sorted_camel_case_factor_pairs():
  spec = synthetic_videos.SyntheticSpec(appearances=('Stripes', 'Checker'), motions=('Up', 'ZoomOut', 'Down'))
  names = synthetic_videos.class_names(spec)
  assert names == sorted(names) and len(set(names)) == 6
  assert names == [a + m for a, m in synthetic_videos.class_factors(spec)]
  assert set(synthetic_videos.class_factors(spec)) == {(a, m) for a in spec.appearances for m in spec.motions}
  assert synthetic_videos.class_names(synthetic_videos.SyntheticSpec()) == [
      'CheckerDown', 'CheckerUp', 'SolidDown', 'SolidUp', 'StripesDown', 'StripesUp']


@pytest.mark.parametrize('kwargs, message', [
    ({'appearances': ('Checker', 'Plaid')}, 'Plaid'),
    ({'motions': ('Up', 'Up')}, 'distinct'),
    ({'motions': ()}, 'non-empty'),
    ({'height': 32}, '>= 48'),
    ({'num_frames': 1}, '>= 2'),
    ({'train_per_class': 0, 'test_per_class': 0}, 'not both 0'),
])
def test_spec_rejects_bad_values_with_a_clear_message(kwargs, message):
  with pytest.raises(ValueError, match=message):
    synthetic_videos.SyntheticSpec(**kwargs)


def test_render_is_deterministic_by_seed():
  spec = synthetic_videos.SyntheticSpec(num_frames=6)
  frames = synthetic_videos.render_video(spec, 3, 12)
  assert frames.shape == (6, spec.height, spec.width, 3) and frames.dtype == np.uint8
  np.testing.assert_array_equal(frames, synthetic_videos.render_video(spec, 3, 12))
  assert not np.array_equal(frames, synthetic_videos.render_video(spec, 3, 13))
  other_seed = synthetic_videos.SyntheticSpec(num_frames=6, seed=1)
  assert not np.array_equal(frames, synthetic_videos.render_video(other_seed, 3, 12))
  with pytest.raises(ValueError, match='out of range'):
    synthetic_videos.render_video(spec, 6, 0)


def test_object_stays_inside_the_frame():
  for pan in (False, True):
    spec = synthetic_videos.SyntheticSpec(camera_pan=pan, motions=synthetic_videos.MOTIONS, appearances=('Dots',))
    clipped, total = 0, 0
    for c in range(len(synthetic_videos.class_names(spec))):
      for seed in range(40):
        total += 1
        truth = synthetic_videos.video_truth(spec, c, seed)
        lo = truth.center_xy - truth.radius_px[:, None]
        hi = truth.center_xy + truth.radius_px[:, None]
        outside = max(-lo.min(), hi[:, 0].max() - (spec.width - 1),
                      hi[:, 1].max() - (spec.height - 1))
        # A fast pan against a fast disc can push the path past the frame; it is then centred and
        # loses a sliver of the disc at its ends, never more than a quarter of the radius.
        assert outside <= (0.25 * truth.radius_px.min() if pan else 0.0)
        clipped += outside > 0
    assert clipped <= (0.05 * total if pan else 0)


def _gray(frames):
  return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(int)


@pytest.mark.parametrize('camera_pan', [False, True])
def test_single_frames_do_not_tell_the_motion(camera_pan):
  # Up is Down played backwards, ZoomOut is ZoomIn backwards: the same set of frames.
  spec = synthetic_videos.SyntheticSpec(appearances=('Stripes',), motions=synthetic_videos.MOTIONS, num_frames=10,
                          camera_pan=camera_pan)
  names = synthetic_videos.class_names(spec)
  for forward, backward in (('Down', 'Up'), ('ZoomIn', 'ZoomOut')):
    a = synthetic_videos.render_video(spec, names.index('Stripes' + forward), 7)
    b = synthetic_videos.render_video(spec, names.index('Stripes' + backward), 7)
    np.testing.assert_array_equal(a, b[::-1])
    assert not np.array_equal(a, b)


@pytest.mark.parametrize('camera_pan', [False, True])
def test_flow_input_does_not_tell_the_appearance(camera_pan):
  # The family pattern lives in chroma only: the luma (what flow is computed on) of one scene is
  # the same for every family, while the colours differ.
  spec = synthetic_videos.SyntheticSpec(appearances=synthetic_videos.APPEARANCES, num_frames=6, camera_pan=camera_pan)
  names = synthetic_videos.class_names(spec)
  videos = {a: synthetic_videos.render_video(spec, names.index(a + 'Up'), 3) for a in synthetic_videos.APPEARANCES}
  truths = {a: synthetic_videos.video_truth(spec, names.index(a + 'Up'), 3) for a in synthetic_videos.APPEARANCES}
  reference = videos['Checker']
  for appearance, frames in videos.items():
    assert np.abs(_gray(frames) - _gray(reference)).max() <= 1  # uint8 rounding of RGB only
    np.testing.assert_array_equal(truths[appearance].center_xy, truths['Checker'].center_xy)
    if appearance != 'Checker':
      assert np.abs(frames.astype(int) - reference).max() > 60


def test_layout_and_split_files(tiny_dataset):
  root, result = tiny_dataset
  assert result['generated'] and result['num_train'] == 36 and result['num_test'] == 12
  assert result['videos_dir'] == os.path.join(root, 'videos')
  assert result['splits_dir'] == os.path.join(root, 'splits')
  names = synthetic_videos.class_names(TINY)
  with open(os.path.join(root, 'splits', 'classInd.txt')) as f:
    assert [line.split() for line in f.read().splitlines()] == [
        [str(i + 1), n] for i, n in enumerate(names)]
  with open(os.path.join(root, 'splits', 'trainlist01.txt')) as f:
    train = [line.split() for line in f.read().splitlines()]
  with open(os.path.join(root, 'splits', 'testlist01.txt')) as f:
    test = [line.split() for line in f.read().splitlines()]
  assert all(len(t) == 2 for t in train) and all(len(t) == 1 for t in test)
  groups = {'train': set(), 'test': set()}
  for split, entries in (('train', train), ('test', test)):
    for entry in entries:
      class_name, filename = entry[0].split('/')
      assert filename.startswith(f'v_{class_name}_g') and filename.endswith('.avi')
      group = filename[len(f'v_{class_name}_'):].split('_')[0]
      groups[split].add(group)
      if split == 'train':
        assert int(entry[1]) == names.index(class_name) + 1
      assert os.path.isfile(os.path.join(root, 'videos', entry[0]))
    per_class = [e[0].split('/')[0] for e in entries]
    expected = TINY.train_per_class if split == 'train' else TINY.test_per_class
    assert all(per_class.count(n) == expected for n in names)
  assert not groups['train'] & groups['test']
  on_disk = {f'{c}/{v}' for c in os.listdir(os.path.join(root, 'videos'))
             for v in os.listdir(os.path.join(root, 'videos', c))}
  assert on_disk == {e[0] for e in train + test}
  with open(os.path.join(root, synthetic_videos.SPEC_FILENAME)) as f:
    meta = json.load(f)
  assert meta['complete'] and synthetic_videos.SyntheticSpec(**meta['spec']) == TINY


def test_written_videos_decode_to_the_rendered_frames(tiny_dataset):
  root, _ = tiny_dataset
  videos = synthetic_videos.split_videos(TINY)
  for class_index, group, clip in videos['train'][::9] + videos['test'][::5]:
    path = os.path.join(root, 'videos', synthetic_videos.video_relpath(TINY, class_index, group, clip))
    cap = cv2.VideoCapture(path)
    assert cap.get(cv2.CAP_PROP_FPS) == TINY.fps
    cap.release()
    decoded = read_avi(path)
    rendered = synthetic_videos.render_video(TINY, class_index, synthetic_videos.clip_seed(group, clip))
    assert decoded.shape == rendered.shape
    # MJPG at quality 90 with 4:2:0 chroma: ~35-40 dB on these textures; a wrong frame is < 20 dB.
    assert _psnr(decoded, rendered) > 30


def test_same_seed_writes_the_same_frames(tiny_dataset, tmp_path):
  root, _ = tiny_dataset
  spec = synthetic_videos.SyntheticSpec(**{**TINY.to_dict(), 'train_per_class': 2, 'test_per_class': 1})
  again = synthetic_videos.write_dataset(spec, str(tmp_path / 'again'))
  for rel in ('CheckerUp/v_CheckerUp_g01_c01.avi', 'StripesDown/v_StripesDown_g02_c02.avi'):
    np.testing.assert_array_equal(read_avi(os.path.join(root, 'videos', rel)),
                                  read_avi(os.path.join(again['videos_dir'], rel)))


def test_write_dataset_skips_refuses_and_overwrites(tmp_path):
  spec = synthetic_videos.SyntheticSpec(height=48, width=64, num_frames=3, train_per_class=1, test_per_class=1,
                          appearances=('Dots',))
  root = str(tmp_path / 'set')
  first = synthetic_videos.write_dataset(spec, root)
  video = os.path.join(first['videos_dir'], synthetic_videos.video_relpath(spec, 0, 1, 1))
  stamp = os.stat(video).st_mtime_ns
  assert not synthetic_videos.write_dataset(spec, root)['generated'] and os.stat(video).st_mtime_ns == stamp

  other = synthetic_videos.SyntheticSpec(**{**spec.to_dict(), 'seed': 5})
  with pytest.raises(ValueError, match='another spec'):
    synthetic_videos.write_dataset(other, root)
  assert synthetic_videos.write_dataset(other, root, overwrite=True)['generated']
  assert not synthetic_videos.write_dataset(other, root)['generated']

  # An interrupted write (marked incomplete) is redone without asking.
  meta_path = os.path.join(root, synthetic_videos.SPEC_FILENAME)
  with open(meta_path) as f:
    meta = json.load(f)
  with open(meta_path, 'w') as f:
    json.dump({**meta, 'complete': False}, f)
  assert synthetic_videos.write_dataset(other, root)['generated']
  os.remove(video)  # a missing video is not a complete data set
  assert synthetic_videos.write_dataset(other, root)['generated'] and os.path.isfile(video)

  foreign = tmp_path / 'foreign'
  foreign.mkdir()
  (foreign / 'notes.txt').write_text('mine')
  for overwrite in (False, True):
    with pytest.raises(ValueError, match='not a synthetic data set'):
      synthetic_videos.write_dataset(spec, str(foreign), overwrite=overwrite)
  assert (foreign / 'notes.txt').read_text() == 'mine'


def test_flow_over_the_object_matches_the_motion():
  # Every motion, with every appearance for Up/Down: the measured mean flow over the disc follows
  # the ground truth, so classes that share a motion move the same whatever they look like, and
  # classes that share a look move differently.
  spec = synthetic_videos.SyntheticSpec(motions=synthetic_videos.MOTIONS)
  names = synthetic_videos.class_names(spec)
  chosen = [n for n in names if n.endswith(('Up', 'Down'))]
  chosen += ['Checker' + m for m in synthetic_videos.MOTIONS if m not in ('Up', 'Down')]
  for name in chosen:
    frames, truth = synthetic_videos.render_video_with_truth(spec, names.index(name), 4)
    masks = truth.object_mask(spec.height, spec.width, radius_scale=0.7)
    for t in (2, 11, 19):
      flow = _flow(frames, t)
      measured = flow[masks[t]].mean(axis=0)
      np.testing.assert_allclose(measured, truth.object_flow_xy[t], atol=0.35,
                                 err_msg=f'{name} t={t}')
      if truth.motion in ('Up', 'Down'):
        assert np.sign(measured[1]) == (-1 if truth.motion == 'Up' else 1)
        assert abs(measured[0]) < 0.35
      if truth.motion in ('ZoomIn', 'ZoomOut'):
        # Radial flow, outwards when growing: d (r(t+1) / r(t) - 1) at distance d from the centre.
        offsets = np.stack(np.nonzero(masks[t])[::-1], axis=1) - truth.center_xy[t]
        distance = np.linalg.norm(offsets, axis=1)
        radial = np.mean(np.sum(offsets * flow[masks[t]], axis=1) / distance.clip(1))
        growth = truth.radius_px[t + 1] / truth.radius_px[t] - 1
        expected = growth * distance.mean()
        assert np.sign(radial) == np.sign(growth) and abs(radial - expected) < 0.5 * abs(expected)


def test_camera_pan_moves_the_background_and_mean_subtraction_removes_it():
  spec = synthetic_videos.SyntheticSpec(camera_pan=True)
  up = synthetic_videos.class_names(spec).index('StripesUp')
  seed = next(s for s in range(100)
              if np.linalg.norm(synthetic_videos.video_truth(spec, up, s).camera_flow_xy) > 1.5)
  frames, truth = synthetic_videos.render_video_with_truth(spec, up, seed)
  still, still_truth = synthetic_videos.render_video_with_truth(synthetic_videos.SyntheticSpec(), up, seed)
  assert not np.any(still_truth.camera_flow_xy)
  for t in (3, 15):
    background = ~truth.object_mask(spec.height, spec.width, radius_scale=1.4)[t]
    disc = truth.object_mask(spec.height, spec.width, radius_scale=0.7)[t]
    flow = _flow(frames, t)
    np.testing.assert_allclose(flow[background].mean(axis=0), truth.camera_flow_xy, atol=0.15)
    assert np.linalg.norm(flow.mean(axis=(0, 1))) > 1.0
    subtracted = flow - flow.mean(axis=(0, 1))  # the paper's per-field mean flow subtraction
    assert np.linalg.norm(subtracted[background].mean(axis=0)) < 0.15
    # What is left on the disc is its motion relative to the scene: upwards.
    relative = truth.object_flow_xy[t] - truth.camera_flow_xy
    np.testing.assert_allclose(subtracted[disc].mean(axis=0), relative, atol=0.4)
    assert relative[1] < -0.9 and abs(relative[0]) < 1e-9
    still_background = ~still_truth.object_mask(spec.height, spec.width, radius_scale=1.4)[t]
    assert np.linalg.norm(_flow(still, t)[still_background].mean(axis=0)) < 0.05


def test_tool_writes_and_reports(tmp_path):
  out = tmp_path / 'tool'
  args = [sys.executable, os.path.join(REPO_ROOT, 'tools', 'make_synthetic_videos.py'),
          f'--output_dir={out}', '--train_per_class=1', '--test_per_class=1', '--height=48',
          '--width=64', '--num_frames=3', '--appearances=Dots,Rings', '--motions=ZoomIn,ZoomOut']
  done = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120)
  assert '1 DotsZoomIn' in done.stdout and 'appearance_only 50.0%' in done.stdout
  assert 'motion_only 50.0%' in done.stdout
  assert len(os.listdir(out / 'videos')) == 4
  bad = subprocess.run(args[:-1] + ['--motions=Left'], capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and 'Left' in bad.stderr
