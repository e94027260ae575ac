"""The rehearsal (twostream_jax/experiments/rehearsal.py): its UCF101-shaped set, its limits, the
bill's parsing, and the whole entry point end to end on a CI-sized set (3 classes, tiny clips and
nets, 2 steps; the configs' own 224 shapes run in tests/configs/)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.config_fixtures import REPO_ROOT
from twostream_jax.experiments import rehearsal_bill
from twostream_jax.experiments import rehearsal_limits
from twostream_jax.prep import split_files
from twostream_jax.prep import ucf101_shaped


def test_split_files_follow_ucf101_groups_and_read_as_ucf101(tmp_path):
  spec = ucf101_shaped.Spec(num_classes=3, groups=(1, 7, 8, 15, 22), num_frames=3, width=64,
                            height=48)
  lists = ucf101_shaped.split_lists(spec)
  assert sorted(lists) == [f'{r}list0{k}.txt' for r in ('test', 'train') for k in (1, 2, 3)]
  assert {line.split('_g')[1][:2] for line in lists['testlist02.txt']} == {'08'}
  assert {line.split('_g')[1][:2] for line in lists['trainlist02.txt']} == {'01', '07', '15', '22'}
  assert lists['trainlist01.txt'][0].endswith(' 1') and ' ' not in lists['testlist01.txt'][0]
  result = ucf101_shaped.write_dataset(spec, str(tmp_path / 'set'))
  index = split_files.read_ucf101_splits(result['splits_dir'],
                                         split_files.scan_sources(result['videos_dir'], 'videos'),
                                         result['videos_dir'])
  assert index.class_names == ucf101_shaped.class_names(spec)
  assert len(index.videos) == 15 and index.split_numbers == [1, 2, 3]


def test_clip_lengths_and_classes_differ_in_appearance_and_motion():
  spec = ucf101_shaped.Spec(num_classes=101)
  lengths = [ucf101_shaped.clip_length(spec, c, g, 1) for c in range(0, 101, 10) for g in (1, 9)]
  assert min(lengths) >= 75 and max(lengths) <= 250 and len(set(lengths)) > 5
  motions = {ucf101_shaped.class_motion(c) for c in range(101)}
  looks = {(c % 5, round(ucf101_shaped.class_hue(spec, c), 6)) for c in range(101)}
  assert len(motions) == 101 and len(looks) == 101
  frames = ucf101_shaped.render_clip(ucf101_shaped.Spec(num_frames=4, long_clip_frames=9), 0, 1, 1)
  assert frames.shape == (9, 240, 320, 3) and frames.dtype == np.uint8
  assert np.abs(np.diff(frames.astype(int), axis=0)).max() > 0  # the disc moves


def test_eval_bank_is_bounded_by_the_protocol_not_the_video_length():
  flow = rehearsal_limits.StreamShape('flow', 10, 224, (256, 341))
  assert rehearsal_limits.bank_items(flow, 300) == rehearsal_limits.bank_items(flow, 3000) == 500
  assert rehearsal_limits.bank_items(flow, 30) < 500
  rgb = rehearsal_limits.StreamShape('rgb', 10, 224, (256, 341))
  assert rehearsal_limits.bank_items(rgb, 300) == 25
  estimate = rehearsal_limits.eval_estimate(flow, 300)
  assert estimate['bank_bytes'] == 500 * 256 * 341 and estimate['videos_per_batch'] == 1


def test_a_configuration_that_would_not_fit_is_refused_naming_its_knob():
  flow = rehearsal_limits.StreamShape('flow', 10, 224, (256, 341), train_batch=8)
  assert rehearsal_limits.check_fits('temporal', flow, 300, int(64e9))['eval']['bank_bytes'] > 0
  with pytest.raises(rehearsal_limits.LimitError, match='validation batch of 256 .*eval_batch_size'):
    rehearsal_limits.check_fits('temporal', flow, 300, int(4e9))
  small_val = rehearsal_limits.StreamShape('flow', 10, 224, (256, 341), eval_batch_size=250,
                                           train_batch=8, val_frames=25)
  with pytest.raises(rehearsal_limits.LimitError, match='longest video .*eval_batch_size'):
    rehearsal_limits.check_fits('temporal', small_val, 300, int(2e9))
  big = rehearsal_limits.StreamShape('flow', 10, 224, (256, 341), eval_batch_size=250,
                                     train_batch=4096)
  with pytest.raises(rehearsal_limits.LimitError, match='global_batch_size'):
    rehearsal_limits.check_fits('temporal', big, 300, int(64e9))


def test_bill_takes_device_rates_from_a_gpu_table():
  table = ('| TV-L1 JAX B=  8 (1 in parallel) | 120.5 pairs/s |\n'
           '| TV-L1 JAX B= 32 (1 in parallel) | 300.0 pairs/s |\n'
           '| cnn_m_2048 flow 224x224x20 train step (img/s, JAX / torch) | 1500.0 / 1400.0 |\n'
           '| resnet18 RGB 224x224x3 fwd (img/s, JAX / torch) | 9000.0 / 8000.0 |\n')
  rates = rehearsal_bill.parse_gpu_table(table)
  assert rates['flow_pairs'][0] == 300.0 and rates['temporal_train'][0] == 1500.0
  assert rates['spatial_eval'][0] == 9000.0 and 'spatial_train' not in rates
  b = rehearsal_bill.bill({'flow_pairs': 3.0}, {'record_bytes_per_frame': 1000.0}, accelerators=4,
                          gpu_table=table)
  flow = next(r for r in b['rows'] if r['stage'] == 'flow_pairs')
  assert flow['items'] == 13320 * 185
  assert flow['devices_hours'] == pytest.approx(flow['items'] / 1200.0 / 3600)
  assert flow['here_hours'] == pytest.approx(flow['items'] / 3.0 / 3600)
  assert b['storage_bytes']['records'] == 13320 * 186 * 1000.0


def test_rehearsal_runs_end_to_end_on_a_ci_sized_set(tmp_path):
  work = tmp_path / 'rehearsal'
  out = subprocess.run(
      [sys.executable, '-m', 'twostream_jax.experiments.rehearsal', f'--workdir={work}',
       '--num_classes=3', '--groups=1,8', '--clip_frames=4', '--long_clip_frames=30', '--steps=2',
       '--batch=2', '--eval_videos=2', '--predict_videos=1', '--width=128', '--height=96',
       '--short_side=64', '--crop=56', '--temporal_model=tiny', '--spatial_model=tiny',
       '--flow_algorithm=farneback'],
      cwd=REPO_ROOT, env=dict(os.environ, XLA_FLAGS=''), capture_output=True, text=True,
      timeout=600)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  with open(work / 'rehearsal.json') as f:
    result = json.load(f)
  stages = [s['stage'] for s in result['stages']]
  assert stages == ['videos', 'records', 'temporal_train', 'temporal_eval', 'spatial_train',
                    'spatial_eval', 'fuse', 'predict']
  for s in result['stages']:
    assert s['seconds'] > 0 and s['peak_rss_bytes'] > 0 and s['items'] > 0, s
  assert result['longest_video_frames'] == 30
  for name in ('temporal', 'spatial'):
    with open(work / name / 'eval' / 'test1' / 'metrics.json') as f:
      assert json.load(f)['num_videos'] == 2
    assert os.listdir(work / name / 'checkpoints')
  svm = np.load(work / 'fusion' / 'fusion_svm.npz')
  assert any(v.shape[-1] == 3 for v in svm.values() if v.ndim)  # fitted at the class count
  with open(work / 'predictions.json') as f:
    assert [v['ok'] for v in json.load(f)['videos']] == [True]
  assert all(r['here_hours'] > 0 for r in result['bill']['rows'])
  assert '| whole rehearsal |' in (work / 'rehearsal.md').read_text()
