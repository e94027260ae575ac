"""Tests of split file parsing (UCF101, HMDB51, deterministic) and partitioning."""

import os

import pytest

from twostream_jax.prep import split_files


def _touch_videos(root, ids, ext='.avi'):
  for video_id in ids:
    path = os.path.join(root, video_id + ext)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, 'w').close()
  return str(root)


def _write(folder, name, lines):
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, name), 'w') as f:
    f.writelines(line + '\n' for line in lines)


UCF_IDS = ['Zoom/v_Zoom_g01_c01', 'Zoom/v_Zoom_g02_c01', 'Apply/v_Apply_g01_c01',
           'Apply/v_Apply_g02_c01']


def _ucf(tmp_path, train2=None):
  videos = _touch_videos(tmp_path / 'videos', UCF_IDS + ['Apply/v_Apply_g09_c01'])
  splits = str(tmp_path / 'splits')
  # classInd order differs from sorted order: labels must follow classInd.
  _write(splits, 'classInd.txt', ['1 Zoom', '2 Apply'])
  _write(splits, 'trainlist01.txt', ['Zoom/v_Zoom_g02_c01.avi 1', 'Apply/v_Apply_g02_c01.avi 2'])
  _write(splits, 'testlist01.txt', ['Zoom/v_Zoom_g01_c01.avi', 'Apply/v_Apply_g01_c01.avi'])
  _write(splits, 'trainlist02.txt', train2 or ['Zoom/v_Zoom_g01_c01.avi 1',
                                               'Apply/v_Apply_g02_c01.avi 2'])
  _write(splits, 'testlist02.txt', ['Zoom/v_Zoom_g02_c01.avi', 'Apply/v_Apply_g01_c01.avi'])
  return videos, splits


def test_ucf101_labels_roles_partitions_and_splits(tmp_path):
  videos, splits = _ucf(tmp_path)
  index = split_files.build_index(videos, 'videos', splits)
  assert index.scheme == 'ucf101' and index.class_names == ['Zoom', 'Apply']
  assert index.split_numbers == [1, 2]
  by_id = {v.video_id: v for v in index.videos}
  assert by_id['Apply/v_Apply_g01_c01'].label == 1 and by_id['Zoom/v_Zoom_g01_c01'].label == 0
  assert by_id['Zoom/v_Zoom_g01_c01'].roles == (('test', 1), ('train', 2))
  assert by_id['Apply/v_Apply_g01_c01'].partition == 'test1_test2'
  assert index.unlisted == ['Apply/v_Apply_g09_c01']  # on disk, in no list: not written
  parts = index.partitions()
  assert sorted(parts) == ['test1_test2', 'test1_train2', 'train1_test2', 'train1_train2']
  splits_ = index.splits()
  assert splits_['test1'] == ['test1_test2', 'test1_train2']
  assert splits_['train2'] == ['test1_train2', 'train1_train2']
  # Every listed video is in exactly one of train_k / test_k.
  for k in (1, 2):
    train = {v.video_id for p in splits_[f'train{k}'] for v in parts[p]}
    test = {v.video_id for p in splits_[f'test{k}'] for v in parts[p]}
    assert not train & test and len(train | test) == 4


def test_ucf101_matches_names_ignoring_case(tmp_path):
  videos, splits = _ucf(tmp_path)
  _write(splits, 'trainlist01.txt', ['zoom/V_ZOOM_G02_C01.avi 1', 'Apply/v_Apply_g02_c01.avi 2'])
  index = split_files.build_index(videos, 'videos', splits)
  assert 'Zoom/v_Zoom_g02_c01' in {v.video_id for v in index.videos}


@pytest.mark.parametrize('train2, message', [
    (['Zoom/v_Zoom_g01_c01.avi 1', 'Apply/v_Apply_g07_c01.avi 2'], 'not in --videos_dir'),
    (['Zoom/v_Zoom_g01_c01.avi 1', 'Jump/v_Jump_g01_c01.avi 3'], "class 'Jump', not in classInd"),
    (['Zoom/v_Zoom_g01_c01.avi 2'], 'gives label 2, classInd.txt says 1'),
    (['Zoom/v_Zoom_g02_c01.avi 1'], 'both a train and a test video of split 2'),
])
def test_ucf101_errors(tmp_path, train2, message):
  videos, splits = _ucf(tmp_path, train2)
  with pytest.raises(split_files.SplitFileError, match=message):
    split_files.build_index(videos, 'videos', splits)


def test_ucf101_needs_complete_split_pairs(tmp_path):
  videos, splits = _ucf(tmp_path)
  os.remove(os.path.join(splits, 'testlist02.txt'))
  with pytest.raises(split_files.SplitFileError, match='split 2'):
    split_files.build_index(videos, 'videos', splits)


def test_hmdb51_roles_and_unused_videos(tmp_path):
  videos = _touch_videos(tmp_path / 'v', ['wave/a', 'wave/b', 'wave/c', 'clap/d', 'clap/e'])
  splits = str(tmp_path / 's')
  _write(splits, 'wave_test_split1.txt', ['a.avi 1 ', 'b.avi 2 ', 'c.avi 0 '])
  _write(splits, 'wave_test_split2.txt', ['a.avi 2', 'b.avi 1', 'c.avi 0'])
  _write(splits, 'clap_test_split1.txt', ['d.avi 1', 'e.avi 2'])
  _write(splits, 'clap_test_split2.txt', ['d.avi 1', 'e.avi 2'])
  index = split_files.build_index(videos, 'videos', splits)
  assert index.scheme == 'hmdb51' and index.class_names == ['clap', 'wave']
  by_id = {v.video_id: v for v in index.videos}
  assert by_id['wave/a'].roles == (('train', 1), ('test', 2)) and by_id['wave/a'].label == 1
  assert by_id['clap/e'].partition == 'test1_test2'
  assert index.unused == ['wave/c'] and 'wave/c' not in by_id


def test_hmdb51_unused_in_one_split_only_has_fewer_roles(tmp_path):
  videos = _touch_videos(tmp_path / 'v', ['wave/a', 'wave/b', 'wave/c'])
  splits = str(tmp_path / 's')
  _write(splits, 'wave_test_split1.txt', ['a.avi 1', 'b.avi 2', 'c.avi 1'])
  _write(splits, 'wave_test_split2.txt', ['a.avi 0', 'b.avi 2', 'c.avi 1'])
  index = split_files.build_index(videos, 'videos', splits)
  assert {v.video_id: v.partition for v in index.videos}['wave/a'] == 'train1'
  assert index.splits()['train2'] == ['train1_train2']


def test_hmdb51_missing_class_folder_is_an_error(tmp_path):
  videos = _touch_videos(tmp_path / 'v', ['wave/a'])
  splits = str(tmp_path / 's')
  _write(splits, 'wave_test_split1.txt', ['a.avi 1'])
  _write(splits, 'kick_test_split1.txt', ['k.avi 2'])
  with pytest.raises(split_files.SplitFileError, match="no folder.*'kick'"):
    split_files.build_index(videos, 'videos', splits)


def test_deterministic_split_is_stable_and_class_balanced(tmp_path):
  ids = [f'C{c}/v{i:02d}' for c in range(3) for i in range(8)] + ['Solo/only']
  videos = _touch_videos(tmp_path / 'v', ids, ext='.mp4')
  index = split_files.build_index(videos, 'videos', None, test_fraction=0.25)
  assert index.scheme == 'deterministic' and index.class_names == ['C0', 'C1', 'C2', 'Solo']
  roles = {v.video_id: v.roles[0][0] for v in index.videos}
  for c in range(3):  # round(8 * 0.25) = 2 test videos per class
    assert sum(roles[f'C{c}/v{i:02d}'] == 'test' for i in range(8)) == 2
  assert roles['Solo/only'] == 'train'  # a single video cannot be tested
  # The split depends on the ids only: another scan (any file system order) gives the same.
  again = split_files.deterministic_split(dict(reversed(list(split_files.scan_sources(videos, 'videos').items()))),
                                 0.25)
  assert {v.video_id: v.roles for v in again.videos} == {v.video_id: v.roles for v in index.videos}


def test_rawframes_sources_are_folders(tmp_path):
  for video_id in ('A/x', 'A/y', 'B/z'):
    os.makedirs(tmp_path / 'raw' / video_id)
  (tmp_path / 'raw' / 'A' / 'stray.txt').write_text('')
  sources = split_files.scan_sources(str(tmp_path / 'raw'), 'rawframes')
  assert sources == {'A/x': 'A/x', 'A/y': 'A/y', 'B/z': 'B/z'}


def test_input_errors(tmp_path):
  with pytest.raises(split_files.SplitFileError, match='not a folder'):
    split_files.build_index(str(tmp_path / 'nope'), 'videos')
  _touch_videos(tmp_path / 'v', ['A/a'], ext='.txt')
  with pytest.raises(split_files.SplitFileError, match='holds no video files'):
    split_files.build_index(str(tmp_path / 'v'), 'videos')
  _touch_videos(tmp_path / 'v', ['A/a', 'A/b'])
  with pytest.raises(split_files.SplitFileError, match='neither UCF101'):
    split_files.build_index(str(tmp_path / 'v'), 'videos', str(tmp_path / 'v'))
  _touch_videos(tmp_path / 'v', ['A/a'], ext='.mp4')
  with pytest.raises(split_files.SplitFileError, match='several files for one video'):
    split_files.build_index(str(tmp_path / 'v'), 'videos')


def test_empty_split_messages_match_the_input(tmp_path):
  # No split files, one video per class: the message explains the deterministic rule, and does not
  # send the user to split files that do not exist.
  videos = _touch_videos(tmp_path / 'one_each', ['Aa/a0', 'Bb/b0'])
  with pytest.raises(split_files.SplitFileError) as raised:
    split_files.build_index(videos, 'videos')
  message = str(raised.value)
  assert 'test1 of the deterministic split (no --splits_dir) would have no videos' in message
  assert "'Aa: 1', 'Bb: 1'" in message and 'check the split files' not in message
  # Two videos per class and a test fraction that takes both: train1 is the empty one.
  videos = _touch_videos(tmp_path / 'two_each', ['Aa/a0', 'Aa/a1'])
  with pytest.raises(split_files.SplitFileError, match=r'train1 of the deterministic split.*'
                     r'--test_fraction=0\.75'):
    split_files.build_index(videos, 'videos', test_fraction=0.75)
  # Split files whose test list is empty: those files are the thing to check.
  videos, splits = _ucf(tmp_path / 'ucf')
  _write(splits, 'testlist02.txt', [])
  with pytest.raises(split_files.SplitFileError, match=r'split test2 has no videos in --splits_dir .*: '
                     'check the split files'):
    split_files.build_index(videos, 'videos', splits)
