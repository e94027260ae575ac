"""Tests of streaming decoding: sizes, frame selection, bad files."""

import os

import cv2
import numpy as np
import pytest

from tests import make_tfrecords_fixtures as fx
from twostream_jax.prep import video_decoding


@pytest.mark.parametrize('h, w, short, expected', [
    (240, 320, 256, (256, 341)),   # 320 * 256 / 240 = 341.33
    (320, 240, 256, (341, 256)),   # portrait: width is the short side
    (720, 1280, 64, (64, 114)),    # 1280 * 64 / 720 = 113.8
    (48, 64, 48, (48, 64)),        # already the right size
    (48, 64, 0, (48, 64)),         # 0 keeps the size
    (100, 100, 50, (50, 50)),
])
def test_resized_size(h, w, short, expected):
  assert video_decoding.resized_size(h, w, short) == expected


def test_resize_uses_area_when_shrinking():
  # A 1-pixel checkerboard averages to uniform grey with INTER_AREA (no aliasing into stripes).
  board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
  small = video_decoding.resize_frame(board, 32)
  assert small.shape == (32, 32)
  assert np.abs(small.astype(int) - 127).max() <= 1


@pytest.fixture(scope='module')
def avi(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('dec') / 'A' / 'v.avi')
  fx.write_avi(path, fx.render(0, 1, num_frames=12))
  return path


def test_iter_frames_streams_resized_rgb(avi):
  reference = fx.read_avi(avi)  # [12, 48, 64, 3]
  stats = video_decoding.DecodeStats()
  frames = list(video_decoding.iter_frames(avi, short_side=24, stats=stats))
  assert len(frames) == 12 == stats.kept_frames == stats.decoded_frames
  assert stats.reported_frames == 12 and (stats.source_height, stats.source_width) == (48, 64)
  assert stats.truncation_warning() is None
  assert stats.fps == 25.0 == video_decoding.frame_rate(avi)  # the container's rate
  assert video_decoding.frame_rate(avi + '.missing') == 0.0
  expected = cv2.resize(reference[3], (32, 24), interpolation=cv2.INTER_AREA)
  np.testing.assert_array_equal(frames[3], expected)


def test_max_frames_and_stride_select_the_right_frames(avi):
  reference = fx.read_avi(avi)
  stats = video_decoding.DecodeStats()
  frames = list(video_decoding.iter_frames(avi, max_frames=4, frame_stride=3, stats=stats))
  assert len(frames) == 4 and stats.stopped_early
  for got, want in zip(frames, reference[0::3][:4]):
    np.testing.assert_array_equal(got, want)
  # Without a cap, the stride keeps frames 0, 3, 6, 9 of 12.
  assert len(list(video_decoding.iter_frames(avi, frame_stride=3))) == 4


def test_bad_files_give_reasons(tmp_path, avi):
  empty = tmp_path / 'empty.avi'
  empty.write_bytes(b'')
  corrupt = tmp_path / 'corrupt.avi'
  corrupt.write_bytes(np.random.default_rng(0).bytes(5000))
  cases = {str(empty): 'empty file', str(corrupt): 'cannot open',
           str(tmp_path / 'missing.avi'): 'not found', str(tmp_path): 'not a regular file'}
  for path, reason in cases.items():
    with pytest.raises(video_decoding.VideoDecodeError, match=reason):
      list(video_decoding.iter_frames(path))


def test_truncated_file_keeps_decodable_frames_and_warns(tmp_path, avi):
  data = open(avi, 'rb').read()
  cut = tmp_path / 'cut.avi'
  # MJPG frames are stored one after the other; cutting the file at 60% loses the later frames
  # (and the index), which the container header still counts.
  cut.write_bytes(data[:int(len(data) * 0.6)])
  stats = video_decoding.DecodeStats()
  frames = list(video_decoding.iter_frames(str(cut), stats=stats))
  assert 2 <= len(frames) < 12 and stats.reported_frames == 12  # the AVI header survives the cut
  assert f'reports 12 frames but only {len(frames)} could be decoded' in stats.truncation_warning()


def test_frame_stride_must_be_positive(avi):
  with pytest.raises(ValueError):
    list(video_decoding.iter_frames(avi, frame_stride=0))


def test_video_extensions_are_lower_case():
  assert all(e == e.lower() and e.startswith('.') for e in video_decoding.VIDEO_EXTENSIONS)
  assert os.path.splitext('x.AVI')[1].lower() in video_decoding.VIDEO_EXTENSIONS
