"""Start a real OpenAI-compatible server as a subprocess on 127.0.0.1 and wait until it answers.

    with served([sys.executable, "-m", "llama_cpp.server", ...], port, log) as base_url:
        client = OpenAICompatible(base_url, "m")

The server's output goes to `log`; if it exits or does not answer `/v1/models` within the start
timeout, the error quotes the end of that log, so a CI failure says why the server did not come up.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["free_port", "served"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(log: Path, n: int = 30) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    return "\n".join(lines[-n:])


@contextlib.contextmanager
def served(command: Sequence[str], port: int, log: Path, *, start_timeout: float = 120.0) -> Iterator[str]:
    """Run `command` (a server listening on `port`), yield its `/v1` base URL, stop it on exit."""
    base_url = f"http://127.0.0.1:{port}/v1"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                code = process.returncode
                raise RuntimeError(f"server exited with {code} before answering:\n{_log_tail(log)}")
            # Refused, reset, timed out or an HTTP error status (HTTPError) are all OSErrors.
            models = f"{base_url}/models"
            with contextlib.suppress(OSError), urllib.request.urlopen(models, timeout=2.0) as reply:
                if reply.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not answer within {start_timeout:.0f} s:\n{_log_tail(log)}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
