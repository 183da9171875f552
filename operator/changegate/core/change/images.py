"""Image references: parsing and the match rule between a declared and a running image.

A change declares images per container; a rollout matches when every new
image equals the declared one by tag or by digest. Pure functions only.
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

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def image_matches(expected: str, actual: str, expected_digest: str | None = None) -> bool:
    """Whether the running reference `actual` is the image a change declared.

    Same repository, and: the digests agree when both are known, or else the
    tags agree. A declared digest (in the reference or beside it) must be met
    by the same digest; a declared tag alone is met by that tag, pinned or not.
    """
    want = ImageRef.parse(expected)
    got = ImageRef.parse(actual)
    if want.repository != got.repository:
        return False
    digest = want.digest or expected_digest
    if digest:
        if got.digest:
            return got.digest == digest
        return False
    if want.tag is None:
        return got.tag in (None, "latest") and got.digest is None
    return got.tag == want.tag
