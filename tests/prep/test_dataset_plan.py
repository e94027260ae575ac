"""Tests of the shard plan: counts, determinism, enough units for the workers, rerun checks."""

import os

import pytest

from twostream_jax.prep import dataset_plan
from twostream_jax.prep import shard_writer
from twostream_jax.prep import split_files

SETTINGS = shard_writer.EncodeSettings('farneback', 20.0, 256, 0, 1, 95)


def _index(sizes):
  """sizes: partition roles -> number of videos, e.g. {(('train', 1),): 5}."""
  videos = []
  for roles, n in sizes.items():
    for i in range(n):
      vid = f'C{i % 2}/{"_".join(r + str(k) for r, k in roles)}_{i:03d}'
      videos.append(split_files.VideoEntry(vid, f'C{i % 2}', i % 2, vid + '.avi', roles))
  return split_files.DatasetIndex('deterministic', ['C0', 'C1'], [1], sorted(videos, key=lambda v: v.video_id))


TRAIN, TEST = (('train', 1),), (('test', 1),)


def test_shard_counts_follow_videos_per_shard():
  plan = dataset_plan.make_plan(_index({TRAIN: 25, TEST: 7}), SETTINGS, 'toy', 'videos',
                      videos_per_shard=10, min_units=1)
  assert [len(s) for s in plan.shards['train1']] == [8, 8, 9]  # ceil(25/10) = 3, balanced
  assert [len(s) for s in plan.shards['test1']] == [7]
  assert plan.num_videos() == 32 and plan.splits == {'train1': ['train1'], 'test1': ['test1']}


def test_small_sets_get_a_unit_per_worker():
  plan = dataset_plan.make_plan(_index({TRAIN: 5, TEST: 2}), SETTINGS, 'toy', 'videos',
                      videos_per_shard=100, min_units=4)
  counts = {p: len(s) for p, s in plan.shards.items()}
  assert sum(counts.values()) == 4 and counts == {'test1': 1, 'train1': 3}
  # Never more units than videos.
  plan = dataset_plan.make_plan(_index({TRAIN: 2, TEST: 1}), SETTINGS, 'toy', 'videos', 100, min_units=16)
  assert sum(len(s) for s in plan.shards.values()) == 3


def test_plan_is_deterministic_and_mixes_classes():
  a = dataset_plan.make_plan(_index({TRAIN: 40}), SETTINGS, 'toy', 'videos', 10, 1)
  b = dataset_plan.make_plan(_index({TRAIN: 40}), SETTINGS, 'toy', 'videos', 10, 1)
  assert a.to_json() == b.to_json()
  for shard in a.shards['train1']:
    assert {label for _, label, _ in shard} == {0, 1}  # the hash order mixes the classes


def test_shard_specs_name_files_and_tasks(tmp_path):
  plan = dataset_plan.make_plan(_index({TRAIN: 3}), SETTINGS, 'toy', 'videos', 2, 1)
  specs = plan.shard_specs(str(tmp_path), '/data/videos')
  assert [os.path.basename(s.path) for s in specs] == [
      'toy-train1.tfrecord-00000-of-00002', 'toy-train1.tfrecord-00001-of-00002']
  task = specs[0].videos[0]
  assert task.source_path.startswith('/data/videos/C') and task.label_name == f'C{task.label}'
  assert specs[0].settings == SETTINGS


def test_rerun_checks(tmp_path):
  out = str(tmp_path)
  plan = dataset_plan.make_plan(_index({TRAIN: 3, TEST: 2}), SETTINGS, 'toy', 'videos', 10, 2)
  assert dataset_plan.check_or_store(plan, out) == plan
  assert dataset_plan.check_or_store(dataset_plan.Plan.from_json(plan.to_json()), out) == plan  # same plan: continue
  other_settings = shard_writer.EncodeSettings('dis', 20.0, 256, 0, 1, 95)
  other = dataset_plan.make_plan(_index({TRAIN: 3, TEST: 2}), other_settings, 'toy', 'videos', 10, 2)
  with pytest.raises(dataset_plan.PlanError, match="settings.flow_algorithm: stored 'farneback', now 'dis'"):
    dataset_plan.check_or_store(other, out)
  more = dataset_plan.make_plan(_index({TRAIN: 4, TEST: 2}), SETTINGS, 'toy', 'videos', 10, 2)
  with pytest.raises(dataset_plan.PlanError, match=r'videos or their shards differ \(1 added, 0 removed'):
    dataset_plan.check_or_store(more, out)


def test_refuses_a_folder_with_other_records(tmp_path):
  (tmp_path / 'other-train.tfrecord-00000-of-00001').write_bytes(b'')
  plan = dataset_plan.make_plan(_index({TRAIN: 3, TEST: 2}), SETTINGS, 'toy', 'videos', 10, 1)
  with pytest.raises(dataset_plan.PlanError, match='already holds records not written by this plan'):
    dataset_plan.check_or_store(plan, str(tmp_path))
