"""Everything mitreden keeps lives in one SQLite file, reached only through this package."""

from mitreden.store.store import Store, StoreError, StoreUnavailable

__all__ = ["Store", "StoreError", "StoreUnavailable"]
