"""The dataset writer on a non-POSIX file system: TensorFlow's in-memory ram:// through tf.io.gfile.

ram:// lives in one process, so the writer runs in this process (one worker, as the demo builds its
records; Beam's DirectRunner in memory), once into a local folder and once into ram://, on the same
tiny videos (one corrupt).
"""

import dataclasses
import json
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

from tests import config_fixtures
from tests import make_tfrecords_fixtures as fx
from twostream_jax.data import dataset_metadata
from twostream_jax.data import file_system
from tests.data import pipelines
from twostream_jax.prep import dataset_plan
from twostream_jax.prep import dataset_writer
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files

SHORT_SIDE = 32


def _options(videos: str, output_dir: str) -> dataset_writer.WriterOptions:
  return dataset_writer.WriterOptions(
      source_root=videos, source_kind='videos', splits_dir=None, output_dir=output_dir,
      dataset_name='toy', settings=shard_writer.EncodeSettings(
          flow_algorithm='farneback', flow_bound_px=20.0, short_side=SHORT_SIDE, max_frames=0,
          frame_stride=1, jpeg_quality=90),
      videos_per_shard=2, num_workers=1, max_failures=1, progress=False,
      command_line='test_remote_output')


def _write(options: dataset_writer.WriterOptions) -> dataset_writer.RunSummary:
  return dataset_writer.run(options, dataset_writer.prepare(options))


def _files(folder: str) -> dict[str, bytes]:
  """Name -> bytes of every file of a folder and of its bookkeeping sub-folder (through gfile)."""
  out = {}
  for sub in ('', shard_writer.RESULTS_DIRNAME):
    path = os.path.join(folder, sub) if sub else folder
    for name in tf.io.gfile.listdir(path):
      full = os.path.join(path, name)
      if not tf.io.gfile.isdir(full):
        with tf.io.gfile.GFile(full, 'rb') as f:
          out[os.path.join(sub, name)] = f.read()
  return out


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('remote')
  videos, _, _ = fx.make_two_split_ucf(str(root))  # 6 videos of 2 classes
  with open(os.path.join(videos, 'Alpha', 'v_Alpha_corrupt.avi'), 'wb') as f:
    f.write(b'RIFF' + bytes(range(256)) * 8)
  local = str(root / 'toy')
  remote = f'ram://twostream-{uuid.uuid4().hex}/toy'
  summaries = {'local': _write(_options(videos, local)), 'remote': _write(_options(videos, remote))}
  yield {'videos': videos, 'local': local, 'remote': remote, 'summaries': summaries}
  tf.io.gfile.rmtree(remote.rsplit('/', 1)[0])


def test_ram_output_holds_the_local_runs_bytes(runs):
  local, remote = _files(runs['local']), _files(runs['remote'])
  shards = sorted(n for n in local if '.tfrecord-' in n and os.sep not in n)
  assert len(shards) == runs['summaries']['local'].shards_total > 1
  # Results hold their shard's full path; every other file is the same bytes, shards included.
  results = {n for n in local if n.endswith(shard_writer.RESULT_SUFFIX)}
  assert len(results) == len(shards)
  assert sorted(remote) == sorted(local)
  for name in sorted(set(local) - results):
    assert remote[name] == local[name], name
  assert {'dataset_info.json', 'features.json', dataset_writer.FAILURES_FILENAME,
          dataset_plan.PLAN_FILENAME, dataset_metadata.METADATA_FILENAME} <= set(remote)
  assert not [n for n in remote if shard_writer.is_temporary(n)]
  for name in results:
    result = shard_writer.ShardResult.from_json(remote[name].decode())
    assert result.path.startswith(runs['remote'] + '/') and result.num_bytes == len(
        remote[os.path.basename(result.path)])


def test_failures_and_metadata_load_back_from_ram(runs):
  remote = runs['remote']
  with tf.io.gfile.GFile(os.path.join(remote, dataset_writer.FAILURES_FILENAME)) as f:
    failures = json.load(f)
  assert failures['num_failed'] == 1
  assert failures['failed'][0]['source'] == 'Alpha/v_Alpha_corrupt.avi'
  meta = dataset_metadata.load_metadata(remote)
  assert meta == dataset_metadata.load_metadata(runs['local'])
  assert meta.num_videos('train1') + meta.num_videos('test1') == 6
  assert runs['summaries']['remote'].complete and runs['summaries']['remote'].videos_written == 6


def test_a_rerun_on_ram_redoes_only_unfinished_shards(runs):
  remote = runs['remote']
  options = _options(runs['videos'], remote)
  plan = dataset_writer.prepare(options)
  specs = plan.shard_specs(remote, runs['videos'])
  with_failure = [s.path for s in specs if any(v.video_id.endswith('corrupt') for v in s.videos)]
  lost = next(s.path for s in specs if s.path not in with_failure)
  before = _files(remote)
  file_system.remove(lost)  # as if the run had been killed before this shard was renamed
  summary = dataset_writer.run(options, plan)
  # The lost shard, and the shard whose result lists a failed video (redone to pick up a fix).
  assert len(with_failure) == 1 and summary.shards_written_now == 2
  assert summary.videos_done_before == sum(len(s.videos) for s in specs
                                           if s.path not in (lost, *with_failure))
  after = _files(remote)
  assert sorted(after) == sorted(before)
  for name in after:  # the same shards, results, failures and metadata
    assert after[name] == before[name], name


def test_training_reads_the_same_batch_from_ram(runs):
  batches = []
  for folder in (runs['local'], runs['remote']):
    config = config_fixtures.default_config()
    config.data.data_dirs = folder
    config.data.modality = 'rgb'
    config.data.crop_size = 24
    config.data.val_split = ''
    ds = pipelines.create_train_dataset(config.data, global_batch_size=2, seed=0)
    batches.append(next(pipelines.numpy_batches(ds)))
  local, remote = batches
  assert local['images'].shape == (2, 24, 24, 3)
  assert local.keys() == remote.keys()
  for key in local:
    np.testing.assert_array_equal(remote[key], local[key], err_msg=key)


def test_beam_in_this_process_writes_the_same_files_to_ram(runs):
  pytest.importorskip('apache_beam', reason='the beam extra is not installed: pip install -e '
                      '".[beam]"')
  remote = f'ram://twostream-{uuid.uuid4().hex}/toy'
  options = dataclasses.replace(_options(runs['videos'], remote), runner='beam',
                                beam_options='--runner=DirectRunner')
  try:
    summary = _write(options)
    written = _files(remote)
  finally:
    tf.io.gfile.rmtree(remote.rsplit('/', 1)[0])
  local = _files(runs['local'])
  assert summary.complete and summary.shards_written_now == summary.shards_total
  assert sorted(written) == sorted(local)
  for name in local:
    if not name.endswith(shard_writer.RESULT_SUFFIX):  # results hold their shard's full path
      assert written[name] == local[name], name


def test_inputs_must_be_local_and_unknown_schemes_are_named(runs):
  with pytest.raises(split_files.SplitFileError, match='mount'):
    split_files.build_index(runs['remote'], 'videos')
  options = _options(runs['videos'], 'nosuchfs://bucket/toy')
  with pytest.raises(dataset_plan.PlanError, match='no file system for nosuchfs://'):
    dataset_writer.prepare(options)
  with pytest.raises(dataset_metadata.DatasetError, match='no file system for nosuchfs://'):
    dataset_metadata.load_metadata('nosuchfs://bucket/toy')
