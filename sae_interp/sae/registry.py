"""Architecture registry: name -> SAE subclass.

Architectures register themselves with `@register_architecture("topk")` when their module is
imported (`sae_interp.sae` imports all built-in ones). Registering a name twice is an error, so two
modules can never silently fight over one name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sae_interp.sae.base import SAE

__all__ = ["ARCHITECTURES", "get_architecture", "register_architecture"]

ARCHITECTURES: dict[str, type[SAE]] = {}
"""Every registered name (canonical names and aliases) -> its SAE class."""

_T = TypeVar("_T", bound="type[SAE]")


def register_architecture(name: str, *aliases: str) -> Callable[[_T], _T]:
    """Class decorator registering an SAE subclass under `name` (written to cfg.json) and aliases.

    Raises:
        ValueError: a name or alias is already registered.
    """

    def wrap(cls: _T) -> _T:
        for key in (name, *aliases):
            if key in ARCHITECTURES:
                raise ValueError(
                    f"SAE architecture {key!r} is already registered to {ARCHITECTURES[key].__name__}"
                )
        cls.architecture = name
        for key in (name, *aliases):
            ARCHITECTURES[key] = cls
        return cls

    return wrap


def get_architecture(name: str) -> type[SAE]:
    """The SAE class registered as `name`.

    Raises:
        ValueError: unknown name; the message lists the known ones.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown SAE architecture {name!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name]
