"""Files on a local disk or on any `tf.io.gfile` file system (gs://, ram://, ...).

The few file operations through which the dataset writer (`prep`) and the dataset metadata read and
write, so that `--output_dir` (and a training run's `data.data_dirs`) can be a URL. A path with
'://' goes through `tf.io.gfile`; any other path through `os` and `open` (local files are `fsync`ed
where the writer asks for it). `scheme_problem` says when the installed TensorFlow does not register
a URL's scheme; `replace` renames over an existing file, so a reader sees the old file or the new.

TensorFlow is imported only for URLs, so JAX-core modules that import this one (through
`data.dataset_metadata`) stay free of TensorFlow. Design: docs/design_notes.md.
"""

from __future__ import annotations

import os
from typing import IO, Optional


def is_url(path: str) -> bool:
  """Whether `path` names a `tf.io.gfile` file system rather than the local disk."""
  return '://' in path


def scheme_problem(path: str) -> Optional[str]:
  """Why TensorFlow cannot open the URL `path` (its scheme is not registered), or None."""
  if not is_url(path):
    return None
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scheme = path.split('://', 1)[0]
  known = tf.io.gfile.get_registered_schemes()
  if scheme in known:
    return None
  return (f'{path!r}: this TensorFlow has no file system for {scheme}:// (it has '
          f'{", ".join(f"{k}://" for k in sorted(known) if k)}); mount the storage and give its '
          'local path instead')


_checked_schemes: set[str] = set()


def _gfile(path: str):
  """`tf.io.gfile`, once the scheme of `path` is known to be registered."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  scheme = path.split('://', 1)[0]
  if scheme not in _checked_schemes:
    problem = scheme_problem(path)
    if problem:
      raise ValueError(problem)
    _checked_schemes.add(scheme)
  return tf.io.gfile


def absolute(path: str) -> str:
  """A local path made absolute; a URL as it is (`os.path.abspath` would mangle 'gs://b')."""
  return path if is_url(path) else os.path.abspath(path)


def exists(path: str) -> bool:
  return _gfile(path).exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return _gfile(path).isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
  if not is_url(path):
    return os.path.isfile(path)
  gfile = _gfile(path)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return not gfile.stat(path).is_directory  # one request on an object store
  except tf.errors.NotFoundError:
    return False


def listdir(path: str) -> list[str]:
  """Names in a folder (object stores list sub-folders as 'name/': the slash is dropped)."""
  if not is_url(path):
    return os.listdir(path)
  return [name.rstrip('/') for name in _gfile(path).listdir(path)]


def makedirs(path: str) -> None:
  """Creates a folder and its parents; no error when it exists."""
  if is_url(path):
    _gfile(path).makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def size(path: str) -> int:
  """A file's size in bytes."""
  return _gfile(path).stat(path).length if is_url(path) else os.path.getsize(path)


def change_stamp(path: str) -> Optional[tuple[int, int]]:
  """(modification time in ns, size) of a file, or None when there is none: it differs after the
  file is replaced (a file system without modification times, such as ram://, gives 0 for them:
  then only the size tells)."""
  if is_url(path):
    gfile = _gfile(path)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      stat = gfile.stat(path)
    except tf.errors.NotFoundError:
      return None
    return stat.mtime_nsec, stat.length
  try:
    stat = os.stat(path)
  except OSError:
    return None
  return stat.st_mtime_ns, stat.st_size


def remove(path: str) -> None:
  if is_url(path):
    _gfile(path).remove(path)
  else:
    os.remove(path)


def replace(source: str, target: str) -> None:
  """Renames `source` to `target`, replacing a `target` that exists (docs/design_notes.md)."""
  if is_url(source):
    _gfile(source).rename(source, target, overwrite=True)
  else:
    os.replace(source, target)


def open_file(path: str, mode: str = 'r') -> IO:
  """`open` for a local path, `tf.io.gfile.GFile` for a URL (modes 'r', 'rb', 'w', 'wb')."""
  return _gfile(path).GFile(path, mode) if is_url(path) else open(path, mode)


def read_text(path: str) -> str:
  with open_file(path) as f:
    return f.read()


def sync(path: str) -> None:
  """Flushes a closed local file to its disk (`fsync`); nothing for a URL (see the docstring)."""
  if not is_url(path):
    with open(path, 'rb+') as f:
      os.fsync(f.fileno())


def write_atomic(path: str, data: str | bytes, temporary: Optional[str] = None) -> None:
  """Writes `data` to `temporary` (default: `path + '.tmp'`), then renames it to `path`.

  A reader never sees a partly written `path` (`replace`; docs/design_notes.md).
  """
  temporary = temporary or path + '.tmp'
  with open_file(temporary, 'wb' if isinstance(data, bytes) else 'w') as f:
    f.write(data)
  replace(temporary, path)
