"""Run callbacks right after a module is first imported (one-shot post-import hooks).

``import audit`` uses it to register our transformer with the transformers Auto classes as soon as transformers
is imported, and the CLI to quieten transformers' logging, instead of importing torch and transformers
themselves: reading results (report, gate, compare, verify) needs neither. Standard library only.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType


class _CallbackLoader(importlib.abc.Loader):
    """Executes the module with its own loader, puts that loader back, then runs the callbacks."""

    def __init__(self, loader: importlib.abc.Loader, callbacks: list[Callable[[], None]]) -> None:
        self._loader = loader
        self._callbacks = callbacks

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        for callback in self._callbacks:
            callback()

    def __getattr__(self, name: str):  # resource readers and the like come from the real loader
        return getattr(self._loader, name)


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of one module, once; callbacks added before that import all run after it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.callbacks: list[Callable[[], None]] = []

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # one-shot; the real finders locate the module below
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _CallbackLoader(spec.loader, self.callbacks)
        return spec


def call_after_import(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` once the top-level module ``name`` has been imported (at once if it already is)."""
    if name in sys.modules:
        callback()
        return
    pending = next((finder for finder in sys.meta_path
                    if isinstance(finder, _AfterImportFinder) and finder.name == name), None)
    if pending is None:
        pending = _AfterImportFinder(name)
        sys.meta_path.insert(0, pending)
    pending.callbacks.append(callback)
