"""The platforms dsrctl plans for: one record per platform, found by name.

A platform is one package (``dsrctl/linux/``, ``dsrctl/windows/``) whose ``PLATFORM`` is a
:class:`Platform`: its provider class, planner, spec checks, journal step kinds and
importer (`dsrctl import`), each named as ``"module:attribute"`` and imported on use, so
that plan and drift import only their own platform's modules (start-up is measured:
tests/unit/test_quality.py, benchmarks/). The record is generic in the platform's
provider type; mypy checks, in the record's package under ``TYPE_CHECKING``, that the
named planner, checks and importer take that provider and that it fits the writer
Protocols of the platform's steps. ``tests/unit/test_platforms.py`` checks that every name
resolves to the object mypy checked.

This module imports nothing of dsrctl at run time: a platform package's record imports
this (``dsrctl.spec`` imports ``dsrctl.windows.spec`` when a spec has a ``[windows]``
table).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from dsrctl.planning import PlanResult
    from dsrctl.spec import Spec
    from providers.base import Provider
    from state.ownership import Ownership

# platform name -> "module:PLATFORM", the platform's record; imported on use, by name
# (not seen by tests/unit/test_architecture.py; tests/unit/test_platforms.py loads each).
PLATFORMS: dict[str, str] = {
    "linux": "dsrctl.linux:PLATFORM",
    "windows": "dsrctl.windows:PLATFORM",
}

H = TypeVar("H", bound="Provider")
H_contra = TypeVar("H_contra", contravariant=True)


class Planner(Protocol[H_contra]):
    """Reads the host through its provider and plans (the diff itself is pure)."""

    def __call__(self, spec: Spec, host: H_contra, ownership: Ownership, /) -> PlanResult: ...


class SpecCheck(Protocol[H_contra]):
    """Refuses (SpecError), before anything is read or changed, a spec that names what
    this host does not have."""

    def __call__(self, spec: Spec, host: H_contra, /) -> None: ...


@dataclass(frozen=True)
class ImportRequest:
    """What `dsrctl import` was asked for."""

    interface: str = "lo"  # Linux: where the VIPs live (--interface)
    loopback: str | None = None  # Windows: the adapter that holds the VIPs (--loopback)
    spec_path: str = ""  # where the spec will be (absolute), or a placeholder


@dataclass
class Imported:
    """A spec describing the host as it is, and what the operator should know about it."""

    spec: dict[str, Any]
    notes: list[str] = field(default_factory=list)


class Importer(Protocol[H_contra]):
    """`dsrctl import`: the host's current configuration as a spec and its TOML text."""

    def __call__(self, host: H_contra, request: ImportRequest, /) -> tuple[Imported, str]: ...


@dataclass(frozen=True)
class Platform(Generic[H]):
    name: str
    provider: str  # "module:Class", the Provider subclass (an H)
    planner: str  # "module:function", a Planner[H]
    checks: str  # "module:function", a SpecCheck[H]
    # Modules whose ``STEPS`` (Step classes) are journal kinds of this platform, besides the
    # resource kinds of dsrctl.kinds.registry; imported only when a journal names a kind.
    steps: tuple[str, ...] = ()
    importer: str | None = None  # "module:function", an Importer[H]; None: no `dsrctl import`

    def provider_class(self) -> type[H]:
        cls: type[H] = load(self.provider)
        return cls

    def create(self, **options: Any) -> H:
        return self.provider_class()(**options)

    def bind(self, provider: Provider) -> Bound[H]:
        cls = self.provider_class()
        if not isinstance(provider, cls):
            from providers.errors import ProviderError

            raise ProviderError(
                f"the {self.name} platform plans for {cls.__name__}, not {type(provider).__name__}"
            )
        return Bound(self, provider)


@dataclass(frozen=True)
class Bound(Generic[H]):
    """A provider with its platform: the engine plans and checks through this, typed end to
    end (the planner and the checks take the provider's own type)."""

    record: Platform[H]
    provider: H

    def plan(self, spec: Spec, ownership: Ownership) -> PlanResult:
        planner: Planner[H] = load(self.record.planner)
        return planner(spec, self.provider, ownership)

    def check_spec(self, spec: Spec) -> None:
        checks: SpecCheck[H] = load(self.record.checks)
        checks(spec, self.provider)

    def import_host(self, request: ImportRequest) -> tuple[Imported, str]:
        if self.record.importer is None:
            from providers.errors import ProviderError

            raise ProviderError(f"import is not available on {self.record.name} yet")
        importer: Importer[H] = load(self.record.importer)
        return importer(self.provider, request)


def load(target: str) -> Any:
    """The object a ``"module:attribute"`` string names (the module imported now)."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def platform_names() -> list[str]:
    return sorted(PLATFORMS)


def platform(name: str) -> Platform[Provider]:
    target = PLATFORMS.get(name)
    if target is None:
        from providers.errors import ProviderError

        raise ProviderError(
            f"no provider for platform {name!r} (known: {', '.join(platform_names())})"
        )
    record: Platform[Provider] = load(target)
    return record


def get_provider(name: str | None = None, **options: Any) -> Provider:
    """The provider of platform ``name`` (default: this host's), created with ``options``."""
    from providers.base import detect_platform

    return platform(name or detect_platform()).create(**options)


def bind(provider: Provider) -> Bound[Provider]:
    return platform(provider.platform).bind(provider)


def check_spec(spec: Spec, provider: Provider) -> None:
    """Refuse a spec that names what this host does not have (SpecError), before anything
    is read or changed: the platform's checks over the provider's plain answers."""
    bind(provider).check_spec(spec)


def step_modules() -> list[str]:
    """Every platform's modules of journal step kinds."""
    return [module for name in platform_names() for module in platform(name).steps]
