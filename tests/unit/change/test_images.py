"""Image references: how they split, and when a running image is the declared one."""

from __future__ import annotations

import pytest

from changegate.core.change.images import ImageRef, image_matches, normalise

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
        # A digest the change did not declare: the tag cannot say which digest was reviewed.
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0@{A}", None, False, id="tag-pinned"),
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


@pytest.mark.parametrize(
    ("reference", "normalised"),
    [
        pytest.param("nginx", "docker.io/library/nginx:latest", id="bare-name"),
        pytest.param("nginx:1.27", "docker.io/library/nginx:1.27", id="name-and-tag"),
        pytest.param("docker.io/library/nginx:latest", "docker.io/library/nginx:latest", id="full"),
        pytest.param("index.docker.io/library/nginx", "docker.io/library/nginx:latest", id="index"),
        pytest.param("DOCKER.IO/library/nginx", "docker.io/library/nginx:latest", id="host-case"),
        pytest.param("team/app:2", "docker.io/team/app:2", id="hub-user"),
        pytest.param(f"{REPO}:1.42.0", f"{REPO}:1.42.0", id="registry"),
        pytest.param(
            "Registry.Example.com/a/b", "registry.example.com/a/b:latest", id="lower-host"
        ),
        pytest.param("localhost/app", "localhost/app:latest", id="localhost"),
        pytest.param("localhost:5000/app:1", "localhost:5000/app:1", id="port"),
        pytest.param(f"nginx@{A}", f"docker.io/library/nginx@{A}", id="digest-no-latest"),
        pytest.param(f"nginx:1@{A}", f"docker.io/library/nginx:1@{A}", id="tag-and-digest"),
    ],
)
def test_normalise(reference: str, normalised: str) -> None:
    assert str(normalise(reference)) == normalised


@pytest.mark.parametrize(
    ("expected", "actual", "expected_digest", "matches"),
    [
        pytest.param("nginx", "docker.io/library/nginx:latest", None, True, id="hub-short"),
        pytest.param("index.docker.io/library/nginx:latest", "nginx", None, True, id="hub-index"),
        pytest.param("nginx", "nginx:1.27", None, False, id="latest-vs-tag"),
        pytest.param("nginx:1", "docker.io/nginx:1", None, True, id="library-implied"),
        pytest.param("nginx:1", "evil/nginx:1", None, False, id="other-hub-user"),
        pytest.param(f"{REPO}:1", "REGISTRY.example.com/payments/api:1", None, True, id="host"),
        pytest.param("nginx:1", f"nginx:1@{A}", A, True, id="declared-digest"),
        pytest.param("nginx:1", f"nginx:1@{B}", A, False, id="other-digest"),
        pytest.param("nginx:1", f"nginx:1@{B}", None, False, id="undeclared-digest"),
    ],
)
def test_image_matches_normalised(
    expected: str, actual: str, expected_digest: str | None, matches: bool
) -> None:
    assert image_matches(expected, actual, expected_digest) is matches
