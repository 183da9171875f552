"""Image references: how they split, and when a running image is the declared one."""

from __future__ import annotations

import pytest

from changegate.core.change.images import ImageRef, image_matches

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
REPO = "registry.example.com/payments/api"


@pytest.mark.parametrize(
    ("reference", "repository", "tag", "digest"),
    [
        pytest.param("nginx", "nginx", None, None, id="bare-name"),
        pytest.param("nginx:1.27", "nginx", "1.27", None, id="name-and-tag"),
        pytest.param(f"{REPO}:1.42.0", REPO, "1.42.0", None, id="registry-path-tag"),
        pytest.param("registry:5000/api", "registry:5000/api", None, None, id="port-is-no-tag"),
        pytest.param("registry:5000/api:2", "registry:5000/api", "2", None, id="port-and-tag"),
        pytest.param(f"{REPO}@{A}", REPO, None, A, id="digest-only"),
        pytest.param(f"{REPO}:1.42.0@{A}", REPO, "1.42.0", A, id="tag-and-digest"),
        pytest.param(f"registry:5000/api@{A}", "registry:5000/api", None, A, id="port-digest"),
    ],
)
def test_parse(reference: str, repository: str, tag: str | None, digest: str | None) -> None:
    ref = ImageRef.parse(reference)

    assert (ref.repository, ref.tag, ref.digest) == (repository, tag, digest)
    assert str(ref) == reference


@pytest.mark.parametrize(
    ("expected", "actual", "expected_digest", "matches"),
    [
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0", None, True, id="same-tag"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.1", None, False, id="other-tag"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0@{A}", None, True, id="tag-pinned"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}@{A}", None, False, id="tag-vs-digest-only"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}-evil:1.42.0", None, False, id="other-repo"),
        pytest.param(f"{REPO}:1.42.0", "evil.example.com/api:1.42.0", None, False, id="registry"),
        pytest.param(f"{REPO}@{A}", f"{REPO}@{A}", None, True, id="same-digest"),
        pytest.param(f"{REPO}@{A}", f"{REPO}@{B}", None, False, id="other-digest"),
        pytest.param(f"{REPO}@{A}", f"{REPO}:1.42.0@{A}", None, True, id="digest-any-tag"),
        pytest.param(f"{REPO}@{A}", f"{REPO}:1.42.0", None, False, id="digest-vs-tag-only"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}@{A}", A, True, id="digest-beside-met"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0@{A}", A, True, id="digest-beside-pinned"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0@{B}", A, False, id="digest-beside-other"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0", A, False, id="digest-beside-unmet"),
        pytest.param(REPO, REPO, None, True, id="untagged"),
        pytest.param(REPO, f"{REPO}:latest", None, True, id="untagged-is-latest"),
        pytest.param(REPO, f"{REPO}:1.42.0", None, False, id="untagged-vs-tag"),
        pytest.param(f"{REPO}:1.42.0", REPO, None, False, id="tag-vs-untagged"),
    ],
)
def test_image_matches(
    expected: str, actual: str, expected_digest: str | None, matches: bool
) -> None:
    assert image_matches(expected, actual, expected_digest) is matches
