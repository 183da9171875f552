"""Certificates for serving webhooks on 127.0.0.1 in tests and the demo.

A throwaway CA (trustme, made for exactly this) signs one serving certificate
for 127.0.0.1 and localhost; the API server trusts it through the webhook
configuration's caBundle. The files are what the webhook's TLS context reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServingCertificate:
    ca_file: Path
    cert_file: Path
    key_file: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()


def issue_serving_certificate(
    directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> ServingCertificate:
    """Write ca.crt, tls.crt and tls.key into `directory` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="changegate-test-ca")
    cert = ca.issue_cert(*hosts, common_name=hosts[0])
    result = ServingCertificate(directory / "ca.crt", directory / "tls.crt", directory / "tls.key")
    ca.cert_pem.write_to_path(str(result.ca_file))
    cert.cert_chain_pems[0].write_to_path(str(result.cert_file))
    cert.private_key_pem.write_to_path(str(result.key_file))
    result.key_file.chmod(0o600)
    return result
