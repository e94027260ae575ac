"""The writer's worker processes: none outlives a make_tfrecords killed with kill -9."""

import os
import signal
import subprocess
import sys
import time

from tests import make_tfrecords_fixtures as fx


def _parents() -> dict[int, int]:
  """pid -> parent pid of every live (not zombie) process, from /proc."""
  out = {}
  for name in os.listdir('/proc'):
    if not name.isdigit():
      continue
    try:
      with open(f'/proc/{name}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
      continue  # ended meanwhile
    if fields[0] != 'Z':
      out[int(name)] = int(fields[1])
  return out


def _descendants(pid: int) -> dict[int, int]:
  """Live descendants of `pid` -> their depth below it (1: children, 2: grandchildren, ...)."""
  parents, found, frontier, depth = _parents(), {}, {pid}, 0
  while frontier:
    depth += 1
    frontier = {p for p, pp in parents.items() if pp in frontier and p not in found}
    found.update((p, depth) for p in frontier)
  return found


def test_kill_9_of_the_tool_leaves_no_worker(tmp_path):
  videos = tmp_path / 'videos'
  for c, name in enumerate(('Aa', 'Bb')):
    for i in range(4):
      fx.write_avi(str(videos / name / f'{name.lower()}{i}.avi'), fx.render(c, i, num_frames=24))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3')
  tool = subprocess.Popen(
      [sys.executable, fx.TOOL, '--progress=false', '--videos_dir', str(videos), '--output_dir',
       str(tmp_path / 'out'), '--flow_algorithm', 'tvl1', '--short_side', '48', '--num_workers',
       '2', '--videos_per_shard', '1'], cwd=fx.REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE)
  family = {}
  try:
    # Wait for the pool: a fork server (child) and two workers forked from it (grandchildren).
    deadline = time.monotonic() + 240
    while True:
      family = _descendants(tool.pid)
      if sum(d >= 2 for d in family.values()) >= 2:
        break
      assert tool.poll() is None, f'the tool ended first: {tool.stderr.read()[-2000:]}'
      assert time.monotonic() < deadline, 'no workers after 240 s'
      time.sleep(0.05)
    os.kill(tool.pid, signal.SIGKILL)
    tool.wait()
    deadline = time.monotonic() + 5
    while (left := set(family) & set(_parents())) and time.monotonic() < deadline:
      time.sleep(0.1)
    assert not left, f'alive 5 s after kill -9 of the main process: {sorted(left)} of {family}'
  finally:
    if tool.poll() is None:
      tool.kill()
    for pid in set(family) & set(_parents()):  # only if the test failed: ours, by id
      os.kill(pid, signal.SIGKILL)
