"""Test-wide settings: two virtual CPU devices so that the sharded paths run on two devices, and one
JAX compilation cache for the whole session.

The cache: XLA's CPU compiles take about half of the time of the in-process tests, and many are
repeats (each `train_loop.train`, `init_state` or restored predictor builds new jitted functions,
and a subprocess starts with an empty in-memory cache). JAX's persistent cache, keyed on the
program, its compile options, the devices and the XLA flags, serves those repeats from disk. It
lives in a fresh folder per test session, set in the environment so that the tools the tests start
as subprocesses share it, and is removed at the end; a JAX_COMPILATION_CACHE_DIR set by the caller
is used (and kept) instead.
"""

import atexit
import os
import shutil
import tempfile

# Must be set before JAX initialises its backends.
os.environ.setdefault('XLA_FLAGS', '--xla_force_host_platform_device_count=2')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

# Read by JAX when it is first imported (here and in every subprocess that inherits it).
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='twostream_jax_tests_xla_')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)
# Also the sub-second compiles: a test's eval step or parameter init is compiled in a few tenths.
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
