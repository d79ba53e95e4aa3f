"""Public names read as their public path (``conjure_async.Session``), as anyio's do."""

from __future__ import annotations

import importlib
import pickle
import sys
import types
from typing import Any

import pytest

import conjure_async
from conjure_async._public import publish
from tests.helpers import fresh_python

PUBLIC_PACKAGES = [
    "conjure_async",
    "conjure_async.anthropic",
    "conjure_async.backends",
    "conjure_async.models",
    "conjure_async.skills",
    "conjure_async.store",
    "conjure_async.temporal",
    "conjure_async.testing",
]
"""The packages whose ``__init__`` rewrites ``__module__``."""


def _exported(package: str) -> list[tuple[str, Any]]:
    module = importlib.import_module(package)
    found = []
    for name in module.__all__:
        obj = getattr(module, name)
        named = getattr(obj, "__name__", None) == name
        ours = getattr(obj, "__module__", "").startswith("conjure_async")
        if (isinstance(obj, type) or callable(obj)) and named and ours:
            found.append((name, obj))
    return found


@pytest.mark.parametrize("package", PUBLIC_PACKAGES)
def test_every_exported_class_and_function_names_a_public_module(package: str) -> None:
    """``obj.__module__`` has no private part, and that module really exports the name."""
    wrong = []
    for name, obj in _exported(package):
        home = obj.__module__
        if any(part.startswith("_") for part in home.split(".")):
            wrong.append(f"{package}.{name}: {home}")
        elif getattr(importlib.import_module(home), obj.__qualname__, None) is not obj:
            wrong.append(f"{package}.{name}: {home} does not export it")
    assert wrong == []


def test_reprs_show_the_public_path() -> None:
    """What a user sees in a repr or a traceback is the name they import."""
    from conjure_async.backends import DockerBackend, LocalBackend, tool
    from conjure_async.models import AnthropicModel
    from conjure_async.skills import load_skills
    from conjure_async.testing import FakeAnthropicServer, ScriptedModel

    assert repr(conjure_async.Session) == "<class 'conjure_async.Session'>"
    assert repr(conjure_async.SkillValidationError) == (
        "<class 'conjure_async.SkillValidationError'>"
    )
    assert repr(LocalBackend) == "<class 'conjure_async.backends.LocalBackend'>"
    assert repr(DockerBackend) == "<class 'conjure_async.backends.DockerBackend'>"
    assert repr(AnthropicModel) == "<class 'conjure_async.models.AnthropicModel'>"
    assert repr(conjure_async.AnthropicModel) == "<class 'conjure_async.models.AnthropicModel'>"
    assert repr(ScriptedModel) == "<class 'conjure_async.testing.ScriptedModel'>"
    assert repr(FakeAnthropicServer) == "<class 'conjure_async.testing.FakeAnthropicServer'>"
    assert load_skills.__module__ == "conjure_async.skills"
    assert tool.__module__ == "conjure_async.backends"


def test_exceptions_pickle_through_their_public_path() -> None:
    """An error crossing a process boundary is found again under its public name."""
    error = conjure_async.SessionStateError("the session is closed")
    assert b"conjure_async._exceptions" not in pickle.dumps(error)
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is conjure_async.SessionStateError
    assert str(restored) == str(error)


def test_the_library_never_imports_the_test_kit() -> None:
    """Importing every public package (and each lazy backend) leaves ``testing`` unloaded."""
    code = (
        "import sys, conjure_async, conjure_async.backends as b, conjure_async.models as m, "
        "conjure_async.skills, conjure_async.anthropic\n"
        "[getattr(b, n) for n in b.__all__]; [getattr(m, n) for n in m.__all__]\n"
        "conjure_async.AnthropicModel\n"
        "assert 'conjure_async.testing' not in sys.modules, 'testing imported'\n"
    )
    result = fresh_python(code)
    assert result.returncode == 0, result.stderr


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, exports: list[str]) -> None:
    module = types.ModuleType(name)
    module.__dict__["__all__"] = exports
    monkeypatch.setitem(sys.modules, name, module)


def test_the_nearest_package_exporting_a_name_claims_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subpackage exporting nothing leaves its names to its parent; one exporting keeps them."""
    _fake_module(monkeypatch, "conjure_async.fake", ["Impl", "Near"])
    _fake_module(monkeypatch, "conjure_async.fake.impl", [])
    _fake_module(monkeypatch, "conjure_async.fake.near", ["Near"])
    impl = type("Impl", (), {"__module__": "conjure_async.fake.impl._backend"})
    near = type("Near", (), {"__module__": "conjure_async.fake.near._thing"})
    outside = type("Impl", (), {"__module__": "conjure_async.other._x"})
    public = type("Impl", (), {"__module__": "conjure_async.fake.impl"})

    publish("conjure_async.fake", {"Impl": impl, "Near": near})
    publish("conjure_async.fake", {"Impl": outside})
    publish("conjure_async.fake", {"Impl": public})

    assert [impl.__module__, near.__module__, outside.__module__, public.__module__] == [
        "conjure_async.fake",
        "conjure_async.fake.near._thing",
        "conjure_async.other._x",
        "conjure_async.fake.impl",
    ]


def test_the_docker_backends_names_read_as_conjure_async_backends() -> None:
    """Defined in ``backends.docker._*``, each Docker name reads as ``conjure_async.backends``."""
    from conjure_async import backends

    names = ["DockerBackend", "WarmPool", "build_image", "build_offline_image", "sweep_orphans"]
    assert {name: getattr(backends, name).__module__ for name in names} == dict.fromkeys(
        names, "conjure_async.backends"
    )
