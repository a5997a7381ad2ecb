"""`Registry`: the one way every extension family (model backends, heads, pair losses, data formats, exporters,
trackers, preprocessing kinds) is named, listed and looked up.

A registry belongs to one folder: on its first lookup it imports every module of that folder whose name does not
start with ``_``, and those modules register their built-ins (by decorator, or by a call at module level). So a new
built-in is one new module in the folder plus its test; no import line or list to edit. Code anywhere else (a
user's script) registers the same way; a name already taken is a ``ValueError``.
"""

from __future__ import annotations

import difflib
import fnmatch
import pkgutil
from collections.abc import Iterator, Sequence
from importlib import import_module
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def origin(obj: Any) -> str:
    """Where ``obj`` was defined, ``module.qualname`` (of its class, for an instance); names it in messages.

    Example:
        >>> origin(Registry)
        'finetuner.core.registry.Registry'
    """
    source = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{source.__module__}.{source.__qualname__}"


class Registry(Generic[T]):
    """Named objects of one family, with the built-ins found in one folder.

    Args:
        family: what one entry is, in words (``"head"``, ``"export format"``), for messages.
        package: the dotted name of the folder whose modules register the built-ins; None: no built-ins.
        base: entries must be subclasses (for classes) or instances of it; None: anything.
        fix: appended to the unknown-name error, e.g. how to add one.

    Example:
        >>> heads = Registry("head")
        >>> @heads.register("gated")
        ... class Gated: ...
        >>> heads.get("gated").__name__, heads.names("g*"), "linear" in heads
        ('Gated', ['gated'], False)
        >>> heads.get("gatd")
        Traceback (most recent call last):
        ...
        ValueError: Unknown head 'gatd'. Did you mean 'gated'? Known: 'gated'.
    """

    def __init__(self, family: str, package: str | None = None, *, base: type | None = None, fix: str = "") -> None:
        self.family, self.package, self.base, self.fix = family, package, base, fix
        self._entries: dict[str, T] = {}
        self._discovered = package is None

    def register(self, name: str, obj: T | None = None, *, aliases: Sequence[str] = ()) -> Any:
        """Register ``obj`` as ``name`` (and each of ``aliases``) and return it; without ``obj``, a decorator that
        does so. Every name is checked before any is taken, so a clash leaves nothing half-registered.

        The same definition registered again (a re-imported module, a re-run notebook cell) replaces the old entry.
        A registration from outside the registry's folder first imports the built-ins, so a clash with one is
        reported whatever the import order.

        Raises:
            ValueError: ``name`` is taken by another definition.
            TypeError: ``obj`` is not of the registry's ``base``.

        Example:
            >>> formats = Registry("export format")
            >>> formats.register("npy", lambda model, path: path)  # doctest: +ELLIPSIS
            <function <lambda> at ...>
        """
        if obj is None:
            return lambda value: self.register(name, value, aliases=aliases)
        self._check_base(obj)
        if self.package and not getattr(obj, "__module__", "").startswith(self.package + "."):
            self.discover()
        names = [name, *aliases]
        for key in names:
            known = self._entries.get(key)
            if known is not None and known is not obj and origin(known) != origin(obj):
                raise ValueError(
                    f"A {self.family} named {key!r} is already registered ({origin(known)}): give {origin(obj)} "
                    "another name."
                )
        self._entries.update(dict.fromkeys(names, obj))
        return obj

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it held (for plugins and tests that register their own)."""
        self.get(name)
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        """The entry ``name``.

        Raises:
            ValueError: an unknown name; the message lists the closest names and every known one.
        """
        found = self.find(name)
        if found is None:
            known = self.names()
            close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            listed = ", ".join(map(repr, known)) or "none"
            fix = f" {self.fix}" if self.fix else ""
            raise ValueError(f"Unknown {self.family} {name!r}.{hint} Known: {listed}.{fix}")
        return found

    def find(self, name: str) -> T | None:
        """The entry ``name``, or None."""
        self.discover()
        return self._entries.get(name)

    def names(self, pattern: str = "*") -> list[str]:
        """The registered names matching ``pattern`` (fnmatch), sorted.

        Example:
            >>> Registry("tracker").names()
            []
        """
        self.discover()
        return sorted(name for name in self._entries if fnmatch.fnmatchcase(name, pattern))

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        self.discover()
        return list(self._entries.items())

    def values(self) -> list[T]:
        """The entries in registration order."""
        return [entry for _, entry in self.items()]

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.family!r}, {self.package!r})"

    def discover(self) -> None:
        """Import every module of the registry's folder not named ``_*`` (once; they register the built-ins)."""
        if self._discovered:
            return
        self._discovered = True  # set first: the modules imported below register into this registry
        try:
            folder = import_module(self.package)
            for module in pkgutil.iter_modules(folder.__path__):
                if not module.name.startswith("_"):
                    import_module(f"{self.package}.{module.name}")
        except BaseException:
            self._discovered = False
            raise

    def _check_base(self, obj: Any) -> None:
        if self.base is None:
            return
        ok = issubclass(obj, self.base) if isinstance(obj, type) else isinstance(obj, self.base)
        if not ok:
            raise TypeError(f"A {self.family} must be a {self.base.__name__} (subclass or instance), got {obj!r}.")

