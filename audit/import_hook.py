"""Run a callback right after a module is first imported (a one-shot post-import hook).

``import audit`` uses it to register our transformer with the transformers Auto classes as soon as transformers
is imported, instead of importing torch and transformers itself: reading results (report, gate, compare, verify)
needs neither. Standard library only.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType


class _CallbackLoader(importlib.abc.Loader):
    """Executes the module with its own loader, puts that loader back, then runs the callback."""

    def __init__(self, loader: importlib.abc.Loader, callback: Callable[[], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._callback()

    def __getattr__(self, name: str):  # resource readers and the like come from the real loader
        return getattr(self._loader, name)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self._name = name
        self._callback = callback

    def find_spec(self, fullname, path, target=None):
        if fullname != self._name:
            return None
        sys.meta_path.remove(self)  # one-shot; the real finders locate the module below
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _CallbackLoader(spec.loader, self._callback)
        return spec


def call_after_import(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the top-level module ``name`` has been imported (at once if it already is)."""
    if name in sys.modules:
        callback()
    else:
        sys.meta_path.insert(0, _AfterImportFinder(name, callback))
