"""The machine a benchmark ran on, and child processes measured for wall time and peak memory."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from qa_assistant.errors import UserError


@dataclass
class Measured:
    """A finished child process: wall seconds, peak resident memory (MiB), output tail."""

    seconds: float
    peak_mib: float
    output: str


def run_measured(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Measured:
    """Runs `python ARGS...` and reports its wall time and peak memory (its own, via `wait4`).

    Raises:
        UserError: the process failed (the end of its output is in the message).
    """
    log = (
        Path(os.environ.get("TMPDIR", "/tmp")) / f"qa-assistant-benchmark-{os.getpid()}-{time.time_ns()}.log"
    )
    with log.open("w+", encoding="utf-8") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read()
    log.unlink()
    if process.returncode != 0:
        raise UserError(f"benchmark step `python {' '.join(args)}` failed:\n{output[-2000:]}")
    # Linux reports ru_maxrss in KiB (macOS in bytes).
    peak = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return Measured(seconds, peak, output[-2000:])


def describe_machine() -> dict[str, str]:
    """CPU, cores, memory, accelerators, versions and load: what a reader needs to compare numbers."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    meminfo = Path("/proc/meminfo")
    memory = "?"
    if meminfo.is_file():
        kib = int(
            next(line.split()[1] for line in meminfo.read_text().splitlines() if line.startswith("MemTotal"))
        )
        memory = f"{kib / 1024**2:.0f} GiB"
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": f"{cpu}, {usable} core(s) usable of {os.cpu_count()}",
        "memory": memory,
        "accelerators": _accelerators(),
        "software": ", ".join(
            [f"Python {platform.python_version()}", f"{platform.system()} {platform.release()}"]
            + [f"{p} {_version(p)}" for p in ("tensorflow", "keras", "keras-hub")]
        ),
        "load average (1, 5, 15 min) at start": load,
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _accelerators() -> str:
    # Asking TensorFlow would start it in this process; nvidia-smi answers without that.
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "none (CPU only)"
    gpus = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return ", ".join(gpus) if done.returncode == 0 and gpus else "none (CPU only)"
