"""The file store: ``file:///dir``, jobs as files in one directory on one host."""

from conveyor.stores.file.store import FileStore

__all__ = ["FileStore"]
