"""The 'heldout' validation split: deterministic groups of training videos, excluded from training."""

import numpy as np
import pytest

from twostream_jax.data import dataset_metadata
from tests.data import pipelines
from tests import record_fixtures
from tests.config_fixtures import tiny_train_config

NUM_VIDEOS = 12


@pytest.fixture(scope='module')
def one_video_per_class(tmp_path_factory):
  """12 classes of one training video each: a training example's label names its video."""
  d = str(tmp_path_factory.mktemp('records'))
  record_fixtures.write_tiny_dataset(d, num_classes=NUM_VIDEOS, train_per_class=1,
                                     test_per_class=1, num_frames=4, height=24, width=24)
  return d


def test_heldout_ids_are_deterministic_whole_groups_and_never_everything():
  ids = [f'C{c}/v_C{c}_g{g:02d}_c{k:02d}' for c in range(5) for g in range(1, 5) for k in (1, 2, 3)]
  held = dataset_metadata.heldout_video_ids(ids, 0.1)
  assert held == dataset_metadata.heldout_video_ids(list(ids), 0.1)  # Same on every call (hash, not random).
  assert len(held) >= round(0.1 * len(ids)) and len(held) % 3 == 0  # Whole groups of 3 clips.
  groups = {v.rsplit('_c', 1)[0] for v in held}
  assert all(f'{g}_c{k:02d}' in held for g in groups for k in (1, 2, 3))
  assert held == [v for v in ids if v in held]  # Storage order.
  assert dataset_metadata.heldout_video_ids(ids, 0.0) == []
  assert 0 < len(dataset_metadata.heldout_video_ids(['a', 'b'], 0.5)) < 2
  with pytest.raises(dataset_metadata.DatasetError, match='heldout_fraction'):
    dataset_metadata.heldout_video_ids(ids, 0.9)


def test_heldout_videos_are_excluded_from_training_and_are_the_validation_split(one_video_per_class):
  config = tiny_train_config(one_video_per_class, modality='rgb')
  config.data.crop_size = 16
  config.data.heldout_fraction = 0.2
  assert config.data.val_split == 'heldout'  # The default.
  (metadata,) = pipelines.spec(config.data).metadatas
  held = metadata.video_ids(dataset_metadata.HELDOUT_SPLIT)
  assert len(held) == round(0.2 * NUM_VIDEOS)
  held_labels = {metadata.class_names.index(v.split('/')[0]) for v in held}

  # One epoch of the training stream (frames_per_video=1): every other video exactly once.
  train = pipelines.create_train_dataset(config.data, global_batch_size=2, seed=0)
  epoch = (NUM_VIDEOS - len(held)) // 2
  labels = np.concatenate([b['label'] for b in train.take(epoch).as_numpy_iterator()])
  assert sorted(labels.tolist()) == sorted(set(range(NUM_VIDEOS)) - held_labels)

  # Validation reads exactly the held-out videos.
  val = pipelines.create_eval_dataset(config.data, split=dataset_metadata.HELDOUT_SPLIT, num_frames=1,
                                           num_crops=1, global_batch_size=2)
  seen = [(int(l), float(m)) for b in val.as_numpy_iterator() for l, m in zip(b['label'], b['mask'])]
  assert sorted(l for l, m in seen if m) == sorted(held_labels)

  # Without held-out validation every training video trains.
  config.data.val_split = ''
  train = pipelines.create_train_dataset(config.data, global_batch_size=2, seed=0)
  labels = np.concatenate([b['label'] for b in train.take(NUM_VIDEOS // 2).as_numpy_iterator()])
  assert sorted(labels.tolist()) == list(range(NUM_VIDEOS))
