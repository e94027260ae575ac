r"""Where a CPU train step's time goes: XLA's per-operation thread time, page faults, CPU seconds.

    python bench/profile_train_step.py --model=resnet18 --batch=8 --wait_idle=600

Compiles bench_models.py's train step with what `python -m twostream_jax.main` uses on a CPU
(Eigen convolutions), traces three steps with XLA's CPU TraceMe annotations on and sums each
operation's time over the threads that ran it (per step). Operations run concurrently on the
intra-op threads, so the sums can exceed the step's wall time; convolutions run inside Eigen's own
thread pool and are not among the traced events. The top fusions are listed with their output
shapes and operands from the optimised HLO. Then the step's minor page faults and user/system CPU
seconds (getrusage), also for PyTorch's step unless --no_torch.

The trace is read with jax's xplane reader (`jax._src.lib._profile_data`), an internal module.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import glob
import os
import re
import resource
import shutil
import tempfile
import time

DUMP = tempfile.mkdtemp(prefix='profile_train_step_hlo_')
atexit.register(shutil.rmtree, DUMP, ignore_errors=True)
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_cpu_enable_xprof_traceme=true'
                           f' --xla_dump_to={DUMP} --xla_dump_hlo_as_text'
                           ' --xla_dump_hlo_module_re=.*train_step.*').strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

import bench_models  # pylint: disable=wrong-import-order,wrong-import-position
import load_check  # pylint: disable=wrong-import-order,wrong-import-position

STEPS = 3


def _trace_events(step) -> dict[str, float]:
  """{event name: milliseconds per step} of STEPS traced steps."""
  from jax._src.lib import _profile_data  # pylint: disable=g-import-not-at-top
  trace_dir = tempfile.mkdtemp(prefix='profile_train_step_trace_')
  atexit.register(shutil.rmtree, trace_dir, ignore_errors=True)
  jax.profiler.start_trace(trace_dir)
  for _ in range(STEPS):
    step()
  jax.profiler.stop_trace()
  path = glob.glob(f'{trace_dir}/**/*.xplane.pb', recursive=True)[0]
  totals: dict[str, float] = collections.Counter()
  for plane in _profile_data.ProfileData.from_file(path).planes:
    for line in plane.lines:
      if not line.name.startswith('tf_XLAEigen'):  # The intra-op threads that run the thunks.
        continue
      for event in line.events:
        totals[event.name] += event.duration_ns / 1e6 / STEPS
  return totals


def _hlo_operations() -> dict[str, str]:
  """{instruction name: 'shape <- operands'} of the optimised train step."""
  files = glob.glob(f'{DUMP}/*train_step*after_optimizations.txt')
  if not files:
    return {}
  text = open(files[0], encoding='utf-8').read()
  entry = text[text.index('ENTRY'):]
  found = {}
  for match in re.finditer(r'%(\S+) = (\S+) fusion\(([^)]*)\)', entry):
    found[match.group(1)] = f'{match.group(2)} <- {match.group(3)[:70]}'
  return found


def _cpu_use(step) -> tuple[float, float, float, float]:
  """(wall s, minor page faults, user CPU s, system CPU s) per step."""
  before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
  for _ in range(STEPS):
    step()
  wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
  return (wall / STEPS, (after.ru_minflt - before.ru_minflt) / STEPS,
          (after.ru_utime - before.ru_utime) / STEPS, (after.ru_stime - before.ru_stime) / STEPS)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--model', default='resnet18')
  parser.add_argument('--batch', type=int, default=8)
  parser.add_argument('--top', type=int, default=12, help='fusions listed one by one')
  parser.add_argument('--no_torch', action='store_true')
  load_check.add_arguments(parser)
  args = parser.parse_args()
  monitor = load_check.LoadMonitor(args.wait_idle)
  _, step, _, _ = bench_models.jax_benchmarks(args.model, args.batch, 224, 3, 'float32',
                                              bench_models.VARIANTS[bench_models.MAIN_VARIANT])
  for _ in range(2):
    step()
  events = _trace_events(step)
  kinds: dict[str, float] = collections.Counter()
  for name, ms in events.items():
    kinds[re.sub(r'\.\d+$', '', name)] += ms
  print(f'{args.model}, batch {args.batch}: thread milliseconds per step by operation kind '
        f'(intra-op threads; {monitor.now()})')
  for kind, ms in kinds.most_common(15):
    print(f'{ms:9.1f}  {kind}')
  operations = _hlo_operations()
  print(f'\nthe {args.top} costliest fusions (ms per step, output shape <- operands)')
  fusions = {n: ms for n, ms in events.items() if n in operations}
  for name, ms in sorted(fusions.items(), key=lambda item: -item[1])[:args.top]:
    print(f'{ms:9.1f}  {name}: {operations[name]}')

  steps = {'JAX': step}
  if not args.no_torch:
    import torch  # pylint: disable=g-import-not-at-top
    torch.set_num_threads(os.cpu_count() or 1)
    torch_fns = bench_models.torch_benchmarks(args.model, args.batch, 224, 3, 'cpu')
    if torch_fns:
      steps['PyTorch'] = torch_fns[1]
  print('\nper step: wall s, minor page faults, user CPU s, system CPU s')
  for label, fn in steps.items():
    fn()
    wall, faults, user, system = _cpu_use(fn)
    print(f'{label:<8} {wall:7.3f} {faults:10.0f} {user:8.3f} {system:8.3f}')
  print(monitor.verdict())


if __name__ == '__main__':
  main()
