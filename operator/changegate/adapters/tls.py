"""Serving certificates of our HTTPS servers, reloaded when their mounted files rotate.

The webhook's admission server and the controller's alert intake both serve a
certificate from a Secret volume; each holds one `ServingCertificate` and runs
its `watch` beside the server, so a renewal is served without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

log = logging.getLogger(__name__)

CERT_CHECK_SECONDS = 10.0


class ServingCertificate:
    """The server's TLS context, reloaded in place when the mounted files change.

    A Secret volume swaps its files on rotation (cert-manager renews before
    expiry); loading the new pair into the same context serves it to every new
    connection without a restart.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._loaded = self._contents()
        self.context.load_cert_chain(str(cert_file), str(key_file))

    def _contents(self) -> tuple[bytes, bytes]:
        return self.cert_file.read_bytes(), self.key_file.read_bytes()

    def reload_if_changed(self) -> bool:
        try:
            contents = self._contents()
            if contents == self._loaded:
                return False
            self.context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as error:
            # Mid-rotation the pair may not match yet; the next look will.
            log.warning("serving certificate not reloaded: %s", error)
            return False
        self._loaded = contents
        log.info("serving certificate reloaded from %s", self.cert_file)
        return True

    async def watch(self, interval: float = CERT_CHECK_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.reload_if_changed)
