"""Image references: parsing and the match rule between a declared and a running image.

A change declares images per container; a rollout matches when every new
image equals the declared one by tag or by digest. References are normalised
(`normalise`) before any comparison. Pure functions only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image reference split into repository, tag and digest."""

    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        rest, _, digest = reference.partition("@")
        # A tag follows the last colon after the last slash (a colon before it is a port).
        slash = rest.rfind("/")
        colon = rest.rfind(":")
        if colon > slash:
            return cls(rest[:colon], rest[colon + 1 :], digest or None)
        return cls(rest, None, digest or None)

    def normalised(self) -> ImageRef:
        """The same image as the container runtime names it (see `normalise`)."""
        host, slash, path = self.repository.partition("/")
        if not slash or not _is_registry_host(host):
            host, path = DEFAULT_REGISTRY, self.repository
        host = host.lower()
        if host in DOCKER_HUB_ALIASES:
            host = DEFAULT_REGISTRY
        if host == DEFAULT_REGISTRY and "/" not in path:
            path = f"library/{path}"
        tag = self.tag or (None if self.digest else DEFAULT_TAG)
        return ImageRef(f"{host}/{path}", tag, self.digest)

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"index.docker.io", "registry-1.docker.io"})
DEFAULT_TAG = "latest"


def _is_registry_host(component: str) -> bool:
    """The first path component names a registry when it looks like a host (as Docker reads it)."""
    return "." in component or ":" in component or component.lower() == "localhost"


def normalise(reference: str) -> ImageRef:
    """A reference in full: registry (lowercased, docker.io by default), path, tag, digest.

    `nginx`, `docker.io/library/nginx:latest` and `index.docker.io/library/nginx:latest`
    are one image; a reference without tag or digest means the tag `latest`.
    """
    return ImageRef.parse(reference).normalised()


def image_matches(expected: str, actual: str, expected_digest: str | None = None) -> bool:
    """Whether the running reference `actual` is the image a change declared.

    Same repository once both are normalised, and: a declared digest (in the
    reference or beside it) is met only by the same digest; a declared tag
    alone is met by that tag without a digest. A digest the change did not
    declare is refused: the tag cannot say which digest was reviewed.
    """
    want = normalise(expected)
    got = normalise(actual)
    if want.repository != got.repository:
        return False
    digest = want.digest or expected_digest
    if digest:
        return got.digest == digest
    return got.digest is None and got.tag == want.tag


def is_deployed_reference(recorded: str, recorded_digest: str | None, actual: str) -> bool:
    """Whether `actual` is exactly the reference a finished rollout ran, for a rollback.

    Same normalised repository and tag; a digest in `actual` must be the one
    recorded (in the reference or beside it), and a reference that was pinned
    by digest stays pinned to it.
    """
    was = normalise(recorded)
    got = normalise(actual)
    if (was.repository, was.tag) != (got.repository, got.tag):
        return False
    if got.digest is not None:
        return got.digest in (was.digest, recorded_digest)
    return was.digest is None
