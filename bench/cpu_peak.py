"""The CPU's peak float32 FLOP/s from its cores, clock and vector width, with the reasoning stated.

    peak = cores x clock x FMA pipes x float32 lanes per pipe x 2 (an FMA is two FLOPs)

Cores are the ones this process may run on. The clock is `--clock_ghz` when given, else cpufreq's
maximum, else /proc/cpuinfo's `cpu MHz`, else its `bogomips / 2` (the TSC rate on x86 VMs);
turbo clocks above it make fractions above 1 possible. Lanes per pipe: 16 with AVX-512, 8 with
AVX2/FMA, 4 otherwise, except AMD families 0x17 and 0x19 (Zen 1-4), whose FP pipes are 256 bits
wide, so AVX-512 runs at 8 lanes per pipe. Two FMA pipes per core unless `--fma_pipes` says
otherwise (some Intel parts have one 512-bit FMA pipe).
"""

from __future__ import annotations

import dataclasses
import os
import re


@dataclasses.dataclass(frozen=True)
class CpuPeak:
  cores: int
  clock_ghz: float
  clock_source: str
  lanes_per_pipe: int
  lanes_reason: str
  fma_pipes: int

  @property
  def flops(self) -> float:
    """Peak float32 FLOP/s."""
    return self.cores * self.clock_ghz * 1e9 * self.fma_pipes * self.lanes_per_pipe * 2

  def describe(self) -> str:
    return (f'CPU peak {self.flops / 1e9:.0f} GFLOP/s = {self.cores} cores x {self.clock_ghz:.2f} GHz '
            f'({self.clock_source}) x {self.fma_pipes} FMA pipes x {self.lanes_per_pipe} float32 '
            f'lanes ({self.lanes_reason}) x 2')


def _cpuinfo() -> dict[str, str]:
  """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      text = f.read().split('\n\n')[0]
  except OSError:
    return {}
  fields = {}
  for line in text.splitlines():
    key, _, value = line.partition(':')
    fields[key.strip()] = value.strip()
  return fields


def _clock(info: dict[str, str]) -> tuple[float, str]:
  try:
    with open('/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq', encoding='utf-8') as f:
      return int(f.read()) / 1e6, 'cpufreq maximum'
  except (OSError, ValueError):
    pass
  if 'cpu MHz' in info:
    return float(info['cpu MHz']) / 1e3, '/proc/cpuinfo cpu MHz'
  if 'bogomips' in info:
    return float(info['bogomips']) / 2e3, '/proc/cpuinfo bogomips / 2'
  raise ValueError('cannot find the CPU clock; pass --clock_ghz')


def _lanes(info: dict[str, str]) -> tuple[int, str]:
  flags = set(info.get('flags', '').split())
  family = int(info.get('cpu family', '0') or 0)
  amd_256_bit = info.get('vendor_id') == 'AuthenticAMD' and family in (0x17, 0x19)
  if 'avx512f' in flags and amd_256_bit:
    return 8, f'AVX-512 on the 256-bit pipes of AMD family {family:#x}'
  if 'avx512f' in flags:
    return 16, 'AVX-512'
  if 'avx2' in flags or 'fma' in flags:
    return 8, 'AVX2/FMA'
  return 4, 'no AVX2 or AVX-512 flag'


def cpu_peak(clock_ghz: float | None = None, fma_pipes: int = 2) -> CpuPeak:
  """Reads this machine's CPU; `clock_ghz` overrides the clock it finds."""
  info = _cpuinfo()
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
  if clock_ghz is not None:
    clock, source = clock_ghz, '--clock_ghz'
  else:
    clock, source = _clock(info)
  lanes, reason = _lanes(info)
  return CpuPeak(cores, clock, source, lanes, reason, fma_pipes)


def model_name() -> str:
  """The CPU's model name from /proc/cpuinfo, or the platform's processor string."""
  name = _cpuinfo().get('model name')
  if name:
    return re.sub(r'\s+', ' ', name)
  import platform  # pylint: disable=g-import-not-at-top
  return platform.processor() or 'unknown CPU'
