"""Which videos exist, their classes and labels, and their roles in the official splits.

Three ways to say it, detected from the files in `splits_dir`:
  * UCF101: `classInd.txt` (labels in this order, 0-based), `trainlist0K.txt`, `testlist0K.txt`;
  * HMDB51: `<class>_test_split<K>.txt` ("video.avi R", R = 1 train, 2 test, 0 unused);
  * no split files: one deterministic, class-balanced split 1 by the SHA-1 of the video ids.
Sources are video files (`<root>/<class>/<video>.<ext>`) or rawframe folders
(`<root>/<class>/<video>/`); a video's id is `<class>/<video name without extension>`. Videos with
at least one role are grouped into partitions by their roles across all splits
(`dataset_metadata.partition_name`). Sources and split files are local paths (OpenCV decodes from
the disk). No TensorFlow, no JAX.

File formats, matching and the deterministic split: docs/design_notes.md.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
import re
from typing import Any, Optional

from twostream_jax.data import dataset_metadata
from twostream_jax.data import file_system
from twostream_jax.prep import video_decoding

_UCF_LIST_RE = re.compile(r'^(train|test)list(\d+)\.txt$')
_HMDB_LIST_RE = re.compile(r'^(?P<cls>.+)_test_split(?P<k>\d+)\.txt$')
_HMDB_ROLES = {'1': 'train', '2': 'test'}
_MAX_LISTED = 5


class SplitFileError(ValueError):
  """Split files or a source folder that cannot be used; the message says what to fix."""


@dataclasses.dataclass(frozen=True)
class VideoEntry:
  """One video to write.

  Attributes:
    video_id: '<class>/<video>'.
    class_name: its class.
    label: its class index.
    source: path of its video file or rawframes folder, relative to the source root.
    roles: its roles, in split order, e.g. (('train', 1), ('test', 2)); splits where it is unused
      are absent.
  """
  video_id: str
  class_name: str
  label: int
  source: str
  roles: tuple[tuple[str, int], ...]

  @property
  def partition(self) -> str:
    return dataset_metadata.partition_name(self.roles)


@dataclasses.dataclass
class DatasetIndex:
  """The videos of a data set with their labels and roles.

  Attributes:
    scheme: 'ucf101', 'hmdb51' or 'deterministic'.
    class_names: class names in label order.
    split_numbers: the split numbers K, sorted.
    videos: videos with at least one role, sorted by id.
    unlisted: ids of sources that no split file names (not written).
    unused: ids named by split files but unused (HMDB51 role 0) in every split (not written).
    details: how the split was made (for the metadata).
  """
  scheme: str
  class_names: list[str]
  split_numbers: list[int]
  videos: list[VideoEntry]
  unlisted: list[str] = dataclasses.field(default_factory=list)
  unused: list[str] = dataclasses.field(default_factory=list)
  details: dict[str, Any] = dataclasses.field(default_factory=dict)

  def partitions(self) -> dict[str, list[VideoEntry]]:
    """Partition name -> its videos (sorted by id), partitions sorted by name."""
    groups: dict[str, list[VideoEntry]] = collections.defaultdict(list)
    for v in self.videos:
      groups[v.partition].append(v)
    return dict(sorted(groups.items()))

  def splits(self) -> dict[str, list[str]]:
    """Split name ('train1', 'test1', ...) -> the names of the partitions whose union it is."""
    out = {}
    parts = self.partitions()
    for k in self.split_numbers:
      for role in ('train', 'test'):
        out[f'{role}{k}'] = [p for p, vs in parts.items() if (role, k) in vs[0].roles]
    return out


def _examples(items: list[str]) -> str:
  shown = ', '.join(repr(x) for x in items[:_MAX_LISTED])
  more = f' and {len(items) - _MAX_LISTED} more' if len(items) > _MAX_LISTED else ''
  return shown + more


def scan_sources(root: str, kind: str) -> dict[str, str]:
  """Finds the videos under `root/<class>/`.

  Args:
    root: the source folder.
    kind: 'videos' (files with a video extension) or 'rawframes' (sub-folders).

  Returns:
    video id -> source path relative to root, sorted by id.

  Raises:
    SplitFileError: root is missing, holds no class folders, or two files share a video id.
  """
  if not os.path.isdir(root):
    raise SplitFileError(f'{root!r} is not a folder')
  found: dict[str, str] = {}
  duplicates = []
  for class_name in sorted(os.listdir(root)):
    class_dir = os.path.join(root, class_name)
    if not os.path.isdir(class_dir) or class_name.startswith('.'):
      continue
    for name in sorted(os.listdir(class_dir)):
      if name.startswith('.'):
        continue
      path = os.path.join(class_dir, name)
      if kind == 'rawframes':
        if not os.path.isdir(path):
          continue
        stem = name
      else:
        stem, ext = os.path.splitext(name)
        if ext.lower() not in video_decoding.VIDEO_EXTENSIONS or not os.path.isfile(path):
          continue
      video_id = f'{class_name}/{stem}'
      if video_id in found:
        duplicates.append(f'{found[video_id]} and {class_name}/{name}')
      found[video_id] = f'{class_name}/{name}'
  if duplicates:
    raise SplitFileError(f'{root!r}: several files for one video: {_examples(duplicates)}; keep one')
  if not found:
    what = 'video folders (<class>/<video>/)' if kind == 'rawframes' else (
        f'video files (<class>/<video>{{{",".join(video_decoding.VIDEO_EXTENSIONS)}}})')
    raise SplitFileError(f'{root!r} holds no {what}')
  return found


class _Resolver:
  """Matches list entries ('Class/video.avi') to scanned sources, exactly or ignoring case."""

  def __init__(self, sources: dict[str, str]):
    self.sources = sources
    self.by_lower = {k.lower(): k for k in sources}
    self.missing: list[str] = []

  def resolve(self, entry: str) -> Optional[str]:
    video_id = os.path.splitext(entry.strip().replace('\\', '/'))[0]
    if video_id in self.sources:
      return video_id
    if video_id.lower() in self.by_lower:
      return self.by_lower[video_id.lower()]
    self.missing.append(entry)
    return None

  def check(self, root_desc: str) -> None:
    if self.missing:
      raise SplitFileError(
          f'the split files name {len(self.missing)} videos that are not in {root_desc}: '
          f'{_examples(self.missing)}. Point --videos_dir/--rawframes_dir at the full data set or '
          'fix the split files.')


def _read_lines(path: str) -> list[str]:
  with open(path, encoding='utf-8-sig') as f:
    return [line.strip() for line in f if line.strip()]


def _entries(roles: dict[str, dict[int, str]], sources: dict[str, str], label_of: dict[str, int],
             numbers: list[int], class_of: Optional[dict[str, str]] = None) -> list[VideoEntry]:
  out = []
  for video_id in sorted(roles):
    class_name = (class_of or {}).get(video_id) or video_id.split('/', 1)[0]
    video_roles = tuple((roles[video_id][k], k) for k in numbers if k in roles[video_id])
    out.append(VideoEntry(video_id, class_name, label_of[class_name], sources[video_id],
                          video_roles))
  return out


def read_ucf101_splits(splits_dir: str, sources: dict[str, str], root_desc: str) -> DatasetIndex:
  """Reads classInd.txt, trainlist0K.txt and testlist0K.txt (docs/design_notes.md)."""
  class_ind = _read_lines(os.path.join(splits_dir, 'classInd.txt'))
  class_names = []
  for i, line in enumerate(class_ind):
    parts = line.split()
    if len(parts) != 2 or parts[0] != str(i + 1):
      raise SplitFileError(f'classInd.txt line {i + 1} is {line!r}; expected "{i + 1} ClassName"')
    class_names.append(parts[1])
  label_of = {c: i for i, c in enumerate(class_names)}
  label_of_lower = {c.lower(): i for i, c in enumerate(class_names)}
  lists: dict[int, dict[str, str]] = collections.defaultdict(dict)
  for name in sorted(os.listdir(splits_dir)):
    m = _UCF_LIST_RE.match(name)
    if m:
      lists[int(m.group(2))][m.group(1)] = name
  incomplete = [f'split {k}: only {list(v)}' for k, v in lists.items() if len(v) != 2]
  if not lists or incomplete:
    raise SplitFileError(f'{splits_dir!r}: classInd.txt needs pairs trainlist0K.txt + testlist0K.txt '
                         f'({"; ".join(incomplete) or "none found"})')
  resolver = _Resolver(sources)
  roles: dict[str, dict[int, str]] = collections.defaultdict(dict)
  class_of: dict[str, str] = {}
  problems = []
  for k in sorted(lists):
    for role in ('train', 'test'):
      filename = lists[k][role]
      for line in _read_lines(os.path.join(splits_dir, filename)):
        parts = line.split()
        class_name = parts[0].replace('\\', '/').split('/', 1)[0]
        if class_name.lower() not in label_of_lower:
          problems.append(f'{filename}: {parts[0]!r} is of class {class_name!r}, not in classInd.txt')
          continue
        if role == 'train' and len(parts) > 1 and parts[1] != str(
            label_of_lower[class_name.lower()] + 1):
          problems.append(f'{filename}: {line!r} gives label {parts[1]}, classInd.txt says '
                          f'{label_of_lower[class_name.lower()] + 1}')
          continue
        video_id = resolver.resolve(parts[0])
        if video_id is None:
          continue
        # The classInd.txt spelling names the class even where a folder's case differs.
        class_of[video_id] = class_names[label_of_lower[class_name.lower()]]
        if roles[video_id].get(k, role) != role:
          problems.append(f'{video_id} is both a train and a test video of split {k}')
        roles[video_id][k] = role
  if problems:
    raise SplitFileError(f'{splits_dir!r}: {len(problems)} bad split entries: {_examples(problems)}')
  resolver.check(root_desc)
  numbers = sorted(lists)
  return DatasetIndex(
      scheme='ucf101', class_names=class_names, split_numbers=numbers,
      videos=_entries(roles, sources, label_of, numbers, class_of),
      unlisted=sorted(set(sources) - set(roles)),
      details={'split_files': sorted(f for v in lists.values() for f in v.values())})


def read_hmdb51_splits(splits_dir: str, sources: dict[str, str], root_desc: str) -> DatasetIndex:
  """Reads `<class>_test_split<K>.txt` files (docs/design_notes.md)."""
  files: dict[str, dict[int, str]] = collections.defaultdict(dict)
  for name in sorted(os.listdir(splits_dir)):
    m = _HMDB_LIST_RE.match(name)
    if m:
      files[m.group('cls')][int(m.group('k'))] = name
  numbers = sorted({k for ks in files.values() for k in ks})
  lacking = [f'{c} (has splits {sorted(ks)})' for c, ks in files.items() if sorted(ks) != numbers]
  if lacking:
    raise SplitFileError(f'{splits_dir!r}: every class needs a file for each of splits {numbers}; '
                         f'not: {_examples(lacking)}')
  class_names = sorted(files)
  label_of = {c: i for i, c in enumerate(class_names)}
  source_classes = {v.split('/', 1)[0] for v in sources}
  no_folder = sorted(set(class_names) - source_classes)
  if no_folder:
    raise SplitFileError(f'classes with split files but no folder in {root_desc}: '
                         f'{_examples(no_folder)}')
  resolver = _Resolver(sources)
  roles: dict[str, dict[int, str]] = collections.defaultdict(dict)
  named, problems = set(), []
  for class_name in class_names:
    for k, filename in sorted(files[class_name].items()):
      for line in _read_lines(os.path.join(splits_dir, filename)):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ('0', '1', '2'):
          problems.append(f'{filename}: {line!r} (expected "video.avi 0|1|2")')
          continue
        video_id = resolver.resolve(f'{class_name}/{parts[0]}')
        if video_id is None:
          continue
        named.add(video_id)
        if parts[1] in _HMDB_ROLES:
          roles[video_id][k] = _HMDB_ROLES[parts[1]]
  if problems:
    raise SplitFileError(f'{splits_dir!r}: {len(problems)} bad lines: {_examples(problems)}')
  resolver.check(root_desc)
  return DatasetIndex(
      scheme='hmdb51', class_names=class_names, split_numbers=numbers,
      videos=_entries(roles, sources, label_of, numbers),
      unlisted=sorted(set(sources) - named), unused=sorted(named - set(roles)),
      details={'split_files': sorted(f for v in files.values() for f in v.values())})


def deterministic_split(sources: dict[str, str], test_fraction: float) -> DatasetIndex:
  """Split 1 by the SHA-1 of the video ids, per class (docs/design_notes.md)."""
  if not 0.0 < test_fraction < 1.0:
    raise SplitFileError(f'--test_fraction must be in (0, 1), got {test_fraction}')
  by_class: dict[str, list[str]] = collections.defaultdict(list)
  for video_id in sources:
    by_class[video_id.split('/', 1)[0]].append(video_id)
  class_names = sorted(by_class)
  label_of = {c: i for i, c in enumerate(class_names)}
  roles: dict[str, dict[int, str]] = {}
  for ids in by_class.values():
    ids = sorted(ids, key=lambda v: hashlib.sha1(v.encode()).hexdigest())
    num_test = max(1, round(len(ids) * test_fraction)) if len(ids) > 1 else 0
    for i, video_id in enumerate(ids):
      roles[video_id] = {1: 'test' if i < num_test else 'train'}
  return DatasetIndex(
      scheme='deterministic', class_names=class_names, split_numbers=[1],
      videos=_entries(roles, sources, label_of, [1]),
      details={'rule': 'per class, videos ordered by sha1(video_id); the first '
                       'max(1, round(n * test_fraction)) are test1 (none if n == 1), the rest train1',
               'test_fraction': test_fraction})


def build_index(source_root: str, source_kind: str, splits_dir: Optional[str] = None,
                test_fraction: float = 0.25) -> DatasetIndex:
  """Scans the sources and reads the split files (or makes the deterministic split).

  Args:
    source_root: `--videos_dir` or `--rawframes_dir`.
    source_kind: 'videos' or 'rawframes'.
    splits_dir: folder with UCF101 or HMDB51 split files, or None for the deterministic split.
    test_fraction: share of test videos per class of the deterministic split.

  Returns:
    The index, with every official split non-empty.

  Raises:
    SplitFileError: anything that makes the inputs unusable (a URL among them), with what to fix.
  """
  flag = '--rawframes_dir' if source_kind == 'rawframes' else '--videos_dir'
  for name, path in ((flag, source_root), ('--splits_dir', splits_dir)):
    if path and file_system.is_url(path):
      raise SplitFileError(
          f'{name} {path!r} is a URL, but the inputs must be a local path (OpenCV decodes video '
          'files from the disk; only --output_dir may be a URL): mount the storage (gcsfuse, an '
          'HDFS FUSE mount, NFS) and give the path of the mount, or copy the inputs to a disk')
  try:
    sources = scan_sources(source_root, source_kind)
  except SplitFileError as e:
    raise SplitFileError(f'{flag}: {e}') from e
  root_desc = f'{flag} {source_root!r}'
  if splits_dir is None:
    index = deterministic_split(sources, test_fraction)
  else:
    if not os.path.isdir(splits_dir):
      raise SplitFileError(f'--splits_dir {splits_dir!r} is not a folder')
    names = os.listdir(splits_dir)
    if 'classInd.txt' in names:
      index = read_ucf101_splits(splits_dir, sources, root_desc)
    elif any(_HMDB_LIST_RE.match(n) for n in names):
      index = read_hmdb51_splits(splits_dir, sources, root_desc)
    else:
      raise SplitFileError(
          f'--splits_dir {splits_dir!r} holds neither UCF101 split files (classInd.txt, '
          'trainlist01.txt, testlist01.txt) nor HMDB51 ones (<class>_test_split1.txt); leave '
          '--splits_dir out for a deterministic split')
  empty = [s for s, parts in index.splits().items() if not parts]
  if empty and splits_dir is None:
    sizes = collections.Counter(v.class_name for v in index.videos)
    shown = _examples([f'{c}: {n}' for c, n in sorted(sizes.items())])
    raise SplitFileError(
        f'split{"s" if len(empty) > 1 else ""} {", ".join(empty)} of the deterministic split '
        f'(no --splits_dir) would have no videos: of a class of n videos it makes '
        f'max(1, round(n * --test_fraction)) test1 videos (none when n == 1) and the rest train1, '
        f'with --test_fraction={test_fraction} and videos per class {shown}. Add videos (at least '
        '2 in some class), change --test_fraction, or give --splits_dir.')
  if empty:
    raise SplitFileError(f'split{"s" if len(empty) > 1 else ""} {", ".join(empty)} '
                         f'{"have" if len(empty) > 1 else "has"} no videos in --splits_dir '
                         f'{splits_dir!r}: check the split files')
  return index
