"""A test's child process (a resumer, a graph run): started at once (it imports, then
waits for :meth:`Child.go`), its JSON reports read from a queue, killed with SIGKILL."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Child:
    def __init__(self, args: list[str], log: Path, **env: str) -> None:
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                args,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=out,
                env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()

    def until(
        self, key: str, value: Any = None, timeout: float = 60.0, **also: Any
    ) -> dict[str, Any]:
        """The next report with ``key`` (equal to ``value``, if given) and ``also``."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                report = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"the process never reported {key}={value!r} {also}; it said {seen}"
                ) from None
            seen.append(report)
            if key not in report or (value is not None and report[key] != value):
                continue
            if all(report.get(k) == v for k, v in also.items()):
                return report

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
