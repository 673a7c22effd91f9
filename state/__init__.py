"""The state directory: ownership records, the write-ahead journal and the apply lock.

It imports nothing from dsrctl or providers; its errors are its own (state.errors).
"""

from state.journal import Journal
from state.lock import ApplyLock
from state.ownership import Ownership, OwnershipRecord
from state.statedir import StateDir

__all__ = ["ApplyLock", "Journal", "Ownership", "OwnershipRecord", "StateDir"]
