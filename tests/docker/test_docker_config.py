"""The container configuration is a frozen value built from the options, with no engine."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from conjure_async.backends import DockerBackend
from conjure_async.backends.docker._config import ContainerConfig
from conjure_async.backends.docker._container import create_body
from conjure_async.skills import load_skills
from conjure_async.testing import EXAMPLE_SKILLS

CONTROL_MOUNT = {
    "Type": "tmpfs",
    "Target": "/run/conjure",
    "TmpfsOptions": {"SizeBytes": 1024 * 1024, "Mode": 0o1777},
}

DEFAULT_REQUEST = {
    "Image": "conjure-async-sandbox:latest",
    "Cmd": ["sleep", "infinity"],
    "User": "65534:65534",
    "WorkingDir": "/workspace",
    "Env": ["HOME=/workspace", "LANG=C.UTF-8", "PYTHONIOENCODING=utf-8"],
    "Labels": {},
    "Volumes": {"/workspace": {}},
    "NetworkDisabled": True,
    "HostConfig": {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "Tmpfs": {"/tmp": "rw,nosuid,nodev,size=256m"},
        "CapDrop": ["ALL"],
        "CapAdd": [],
        "SecurityOpt": ["no-new-privileges"],
        "Init": True,
        "Binds": [],
        "Memory": 512 * 1024**2,
        "MemorySwap": 512 * 1024**2,
        "NanoCpus": 1_000_000_000,
        "PidsLimit": 256,
        "Mounts": [CONTROL_MOUNT],
    },
}
"""What the backend sent before its options became a value (its secure defaults)."""


def _config(**options: Any) -> ContainerConfig:
    return ContainerConfig.from_options(**options)


def test_the_defaults_are_the_secure_container() -> None:
    """No network, 512 MiB without swap, one CPU, 256 pids, read-only, nobody, no caps."""
    assert _config().create_request() == DEFAULT_REQUEST


def test_every_option_reaches_the_request() -> None:
    """Each option changes its field; ``host_config`` merges last; the control tmpfs stays."""
    config = _config(
        workspace="tmpfs",
        workdir="/work/",
        skills_dir="/skills/",
        network="bridge",
        memory=None,
        cpus=None,
        pids_limit=None,
        read_only=False,
        tmpfs={},
        user="1000:1000",
        cap_add=("NET_BIND_SERVICE",),
        no_new_privileges=False,
        init=False,
        env={"A": "1", "HOME": "/h"},
        host_config={"Mounts": [{"Type": "tmpfs", "Target": "/x"}], "ShmSize": 1024},
        labels={"team": "x"},
    )
    assert config.create_request() == {
        "Image": "conjure-async-sandbox:latest",
        "Cmd": ["sleep", "infinity"],
        "User": "1000:1000",
        "WorkingDir": "/work",
        "Env": ["A=1", "HOME=/h", "LANG=C.UTF-8", "PYTHONIOENCODING=utf-8"],
        "Labels": {"team": "x"},
        "Volumes": {},
        "NetworkDisabled": False,
        "HostConfig": {
            "NetworkMode": "bridge",
            "ReadonlyRootfs": False,
            "Tmpfs": {"/work": "rw,nosuid,nodev,mode=1777"},
            "CapDrop": ["ALL"],
            "CapAdd": ["NET_BIND_SERVICE"],
            "SecurityOpt": [],
            "Init": False,
            "Binds": [],
            "ShmSize": 1024,
            "Mounts": [{"Type": "tmpfs", "Target": "/x"}, CONTROL_MOUNT],
        },
    }


def test_skills_and_a_host_workspace_are_bind_mounts_of_resolved_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Skills mount read-only under ``skills_dir``; a relative host workspace is resolved."""
    skills = load_skills(EXAMPLE_SKILLS)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    config = _config(skills=skills, workspace="out")
    assert config.workspace == str(tmp_path / "out")
    assert not config.own_workspace
    assert config.create_request()["Volumes"] == {}
    assert config.create_request()["HostConfig"]["Binds"] == [
        *(f"{s.path.resolve()}:/mnt/skills/{s.name}:ro" for s in skills),
        f"{tmp_path / 'out'}:/workspace:rw",
    ]


def test_equal_options_give_equal_values_and_keys() -> None:
    """Two backends configured alike match one pool entry; another engine does not."""
    one, two = _config(env={"A": "1"}), _config(env={"A": "1"})
    assert one == two
    assert one.key == two.key
    assert _config(env={"A": "2"}).key != one.key
    assert _config(docker_host="tcp://elsewhere:2376").key != one.key


def test_the_value_is_frozen_and_does_not_share_the_callers_objects() -> None:
    """Changing the mappings given (or a request made) leaves the configuration as it was."""
    env, host_config = {"A": "1"}, {"Ulimits": [{"Name": "nofile", "Soft": 64, "Hard": 64}]}
    config = _config(env=env, host_config=host_config)
    before = config.create_request()
    env["A"] = "changed"
    host_config["Ulimits"][0]["Soft"] = 1
    config.create_request()["HostConfig"]["Ulimits"].clear()
    assert config.create_request() == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.memory = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"memory": "lots"}, ValueError),
        ({"memory": "12x"}, ValueError),
        ({"host_config": {"Ulimits": object()}}, TypeError),
    ],
)
def test_bad_options_fail_when_the_backend_is_built(options: dict[str, Any], error: type) -> None:
    """A size that is not one, or a host_config JSON cannot carry, fails at construction."""
    with pytest.raises(error):
        _config(**options)
    with pytest.raises(error):
        DockerBackend(**options)


def test_the_backend_assembles_its_container_from_the_value() -> None:
    """``DockerBackend(...)`` builds the same value, and reads its settings from it."""
    backend = DockerBackend(memory="64m", workspace="tmpfs", network="bridge", tmpfs={})
    assert backend.config == _config(memory="64m", workspace="tmpfs", network="bridge", tmpfs={})
    settings = ["image", "docker_host", "workspace", "workdir", "skills_dir", "network"]
    settings += ["memory", "cpus", "pids_limit", "read_only", "user"]
    assert {name: getattr(backend, name) for name in settings} == {
        name: getattr(backend.config, name) for name in settings
    }
    assert (backend.memory, backend.tmpfs) == (64 * 1024**2, {})


def test_the_backend_and_the_value_share_their_defaults() -> None:
    """Each container option defaults alike on ``DockerBackend`` and ``from_options``."""
    backend = inspect.signature(DockerBackend).parameters
    options = inspect.signature(ContainerConfig.from_options).parameters
    shared = sorted(set(backend) & set(options))
    assert len(shared) == 21  # egress included
    assert {n: backend[n].default for n in shared} == {n: options[n].default for n in shared}


def test_a_created_container_carries_the_sweep_labels() -> None:
    """The create body adds created-by, session and owner labels (and the pool key)."""
    config = _config(labels={"team": "x"})
    labels = create_body(config, "session-1", pool=True)["Labels"]
    assert labels.pop("conjure_async.owner").rpartition(":")[2].isdigit()
    assert labels == {
        "team": "x",
        "created-by": "conjure_async",
        "conjure_async.session-id": "session-1",
        "conjure_async.pool": config.key,
    }
    assert "conjure_async.pool" not in create_body(config, "s", pool=False)["Labels"]
