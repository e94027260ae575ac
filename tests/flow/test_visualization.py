"""Tests of the flow colour coding and of tools/render_flow.py."""

import os
import subprocess
import sys

import cv2
import numpy as np

from twostream_jax.flow import visualization
from twostream_jax.prep import synthetic_videos
from tests.config_fixtures import REPO_ROOT


def test_zero_flow_is_white_and_directions_follow_the_wheel():
  zero = visualization.flow_to_color(np.zeros((2, 2, 2)), max_magnitude_px=1.0)
  assert (zero == 255).all()
  wheel = visualization.color_wheel()
  n = len(wheel)
  # position = (atan2(-v, -u) / pi + 1) / 2 * (n - 1) indexes the wheel (linear in between).
  def colour(u, v):
    return visualization.flow_to_color(np.array([[[u, v]]]), max_magnitude_px=1.0)[0, 0].astype(float)
  np.testing.assert_allclose(colour(-1.0, 0.0), wheel[(n - 1) // 2], atol=0.5)  # atan2(0, 1) = 0
  down = wheel[13] + 0.5 * (wheel[14] - wheel[13])  # atan2(-1, 0) = -pi/2 -> position 13.5
  np.testing.assert_allclose(colour(0.0, 1.0), down, atol=0.5)
  # Half the magnitude is half-way to white.
  np.testing.assert_allclose(colour(-0.5, 0.0), 255 - 0.5 * (255 - wheel[(n - 1) // 2]), atol=0.5)


def test_render_tool_writes_frames_next_to_flow(tmp_path):
  spec = synthetic_videos.SyntheticSpec(height=48, width=64, num_frames=6)
  path = str(tmp_path / 'v.avi')
  synthetic_videos.write_avi(synthetic_videos.render_video(spec, 0, 1), path, fps=25)
  out = str(tmp_path / 'flow.png')
  result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'tools', 'render_flow.py'),
                           f'--video={path}', '--flow_algorithm=farneback', '--num_steps=3',
                           f'--output={out}'], capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  image = cv2.imread(out)
  assert image.shape == (3 * 48, 3 * 64, 3)  # 3 rows of frame | flow | mean-subtracted flow.
  bad = subprocess.run([sys.executable, os.path.join(REPO_ROOT, 'tools', 'render_flow.py'),
                        f'--video={tmp_path / "missing.avi"}', f'--output={out}'],
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and 'error' in bad.stderr and 'Traceback' not in bad.stderr
