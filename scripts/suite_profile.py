"""Where the test suite's time goes: a pytest plugin, and the summary of what it recorded.

  PYTHONPATH=scripts .venv/bin/python -m pytest -q -n auto --dist worksteal -p suite_profile tests
  .venv/bin/python scripts/suite_profile.py            # the summary, from the last such run

In each pytest process the plugin records, per test: XLA's compilations (JAX's
backend-compile events: the program's name and seconds), the persistent compilation
cache's hits and misses (with their keys: a key missed twice would be a program the cache
failed to share), and the wall time of every subprocess the test started. Each worker
writes `$SUITE_PROFILE_DIR/<worker>.json` (default /tmp/lenet_jax_suite_profile).
"""

import collections
import glob
import json
import logging
import os
import subprocess
import sys
import time

DIRECTORY = os.environ.get("SUITE_PROFILE_DIR", "/tmp/lenet_jax_suite_profile")
_current = {"test": ""}
_compiles, _cache, _processes = [], [], []


def _on_duration(event: str, seconds: float, fun_name: str = "", **_) -> None:
    if event.endswith("backend_compile_duration"):
        _compiles.append((_current["test"], fun_name, seconds))


class _CacheLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for marker, kind in (("cache hit", "hit"), ("CACHE MISS", "miss")):
            if marker in message:
                _cache.append((_current["test"], kind, message.rpartition("key ")[2]))


def _timed_popen():
    """Wraps `subprocess.Popen.wait` to record each child's wall time once it ends."""
    wait = subprocess.Popen.wait
    init = subprocess.Popen.__init__

    def timed_init(self, *args, **kwargs):
        """Only a test's children: not xdist's workers, which the controller starts."""
        started = time.perf_counter() if _current["test"] else 0.0
        self._profile = (_current["test"], started, str(args[0] if args else "")[:120])
        init(self, *args, **kwargs)

    def timed_wait(self, *args, **kwargs):
        code = wait(self, *args, **kwargs)
        test, started, command = getattr(self, "_profile", ("", 0.0, ""))
        if started:
            _processes.append((test, time.perf_counter() - started, command))
            self._profile = ("", 0.0, "")
        return code

    subprocess.Popen.__init__, subprocess.Popen.wait = timed_init, timed_wait


def pytest_configure(config):
    from jax import monitoring

    monitoring.register_event_duration_secs_listener(_on_duration)
    compiler_log = logging.getLogger("jax._src.compiler")
    compiler_log.setLevel(logging.DEBUG)
    compiler_log.addHandler(_CacheLog())
    _timed_popen()


def pytest_runtest_protocol(item, nextitem):
    """Names the test before its fixtures run, so their compiles and processes count too."""
    _current["test"] = item.nodeid


def pytest_sessionfinish(session):
    os.makedirs(DIRECTORY, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(os.path.join(DIRECTORY, f"{worker}.json"), "w") as f:
        json.dump({"compiles": _compiles, "cache": _cache, "processes": _processes}, f)


def summarise(directory: str = DIRECTORY) -> dict:
    compiles, cache, processes = [], [], []
    for path in glob.glob(os.path.join(directory, "*.json")):
        with open(path) as f:
            recorded = json.load(f)
        compiles += recorded["compiles"]
        cache += recorded["cache"]
        processes += recorded["processes"]
    by_file = collections.defaultdict(lambda: [0, 0.0, 0, 0.0])
    for test, _, seconds in compiles:
        row = by_file[test.split("::")[0]]
        row[0], row[1] = row[0] + 1, row[1] + seconds
    for test, seconds, _ in processes:
        row = by_file[test.split("::")[0]]
        row[2], row[3] = row[2] + 1, row[3] + seconds
    misses = collections.Counter(key for _, kind, key in cache if kind == "miss")
    by_program = collections.defaultdict(lambda: [0, 0.0])
    for _, name, seconds in compiles:
        by_program[name][0] += 1
        by_program[name][1] += seconds
    top = sorted(by_file.items(), key=lambda item: -(item[1][1] + item[1][3]))[:20]
    return {
        "compilations": len(compiles),
        "compile_seconds": round(sum(seconds for *_, seconds in compiles), 1),
        "cache_hits": sum(kind == "hit" for _, kind, _ in cache),
        "programs_missed_more_than_once": sum(count > 1 for count in misses.values()),
        "subprocesses": len(processes),
        "subprocess_seconds": round(sum(seconds for _, seconds, _ in processes), 1),
        "by_file": {
            name: {"compiles": n, "compile_s": round(s, 1), "procs": p, "proc_s": round(w, 1)}
            for name, (n, s, p, w) in top
        },
        "by_program": {
            name: {"compiles": n, "seconds": round(s, 1)}
            for name, (n, s) in sorted(by_program.items(), key=lambda item: -item[1][1])[:15]
        },
    }


if __name__ == "__main__":
    print(json.dumps(summarise(sys.argv[1] if len(sys.argv) > 1 else DIRECTORY), indent=1))
