"""The lock cannot drift from the requirements: each pin in requirements*.txt is the
version constraints.txt locks (`make lock` re-resolves it at the lock's date)."""

from __future__ import annotations

from tests.conftest import REPO
from tests.test_docker_compose import requirement_pins


def test_every_requirement_pin_is_the_version_the_lock_installs():
    locked = requirement_pins(REPO / "constraints.txt")
    files = sorted(REPO.glob("requirements*.txt"))
    assert files
    drift = {
        f"{path.name}: {name}": {"pinned": version, "locked": locked.get(name)}
        for path in files
        for name, version in requirement_pins(path).items()
        if locked.get(name) != version
    }
    assert not drift, f"{drift}: change the pin or run `make lock`"
