"""The writer's worker processes: how they start (TF loaded and quiet), that the fork server ends
with the pool, and that none outlives a make_tfrecords killed with kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

from tests import make_tfrecords_fixtures as fx
from twostream_jax.prep import worker_processes

# Run as a script (so that the workers can import `probe` from it) in a process whose environment
# has no TF_CPP_MIN_LOG_LEVEL: two pools one after the other, as two writer runs in one process.
_POOL_PROBE = """
import json, os, sys
from twostream_jax.prep import writer_pool


def probe():
  # In a worker: its log level, whether TF came loaded (nothing here imports it), its parent.
  return os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'tensorflow' in sys.modules, os.getppid()


def fork_servers():
  # This process's live children that are multiprocessing fork servers.
  found = []
  for name in os.listdir('/proc'):
    try:
      with open(f'/proc/{name}/stat') as f:
        state, parent = f.read().rsplit(')', 1)[1].split()[:2]
      with open(f'/proc/{name}/cmdline', 'rb') as f:
        server = b'multiprocessing.forkserver' in f.read()
    except (OSError, ValueError):
      continue  # not a process, or ended meanwhile
    if int(parent) == os.getpid() and state != 'Z' and server:
      found.append(int(name))
  return found


if __name__ == '__main__':
  rounds = []
  for _ in range(2):
    with writer_pool.worker_pool(2) as (pool, _):
      level, tf_loaded, parent = pool.submit(probe).result()
      during = fork_servers()
    rounds.append({'level': level, 'tf_loaded': tf_loaded, 'parent': parent, 'during': during,
                   'after': fork_servers()})
  print(json.dumps({'rounds': rounds, 'caller_level': os.environ.get('TF_CPP_MIN_LOG_LEVEL')}))
"""


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


def test_quiet_tensorflow_logs_keeps_a_level_the_user_set(monkeypatch):
  monkeypatch.delenv('TF_CPP_MIN_LOG_LEVEL', raising=False)
  worker_processes.quiet_tensorflow_logs()
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '2'
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '0')
  worker_processes.quiet_tensorflow_logs()
  assert os.environ['TF_CPP_MIN_LOG_LEVEL'] == '0'


def test_workers_start_quiet_with_tensorflow_from_a_fork_server_that_ends_with_the_pool(tmp_path):
  # The writer's real pool (its context, fork server preload and worker initializer), started by a
  # caller that left TensorFlow's log level unset: whatever the CPU, the level is set in every
  # worker (inherited from the fork server, which set it before importing TF for them).
  script = tmp_path / 'pool_probe.py'
  script.write_text(_POOL_PROBE)
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  result = subprocess.run([sys.executable, str(script)], cwd=fx.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  first, second = report['rounds']
  for r in (first, second):
    # '2', not the '1' that TensorFlow's import leaves where it found none (after its banners).
    assert r['level'] == '2' and r['tf_loaded'], r
    assert r['during'] == [r['parent']], r  # the worker was forked by this process's fork server
    assert r['after'] == [], r  # stopped with the pool
  assert second['parent'] != first['parent']  # the second pool got a fresh fork server
  assert report['caller_level'] is None  # the caller's own environment is left alone


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
