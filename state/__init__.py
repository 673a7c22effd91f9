"""The state directory: ownership records, the write-ahead journal and the apply lock.

Nothing here imports typer or rich; errors are dsrctl.errors classes.
"""

from state.journal import Journal
from state.lock import ApplyLock
from state.ownership import Ownership, OwnershipRecord
from state.statedir import StateDir

__all__ = ["ApplyLock", "Journal", "Ownership", "OwnershipRecord", "StateDir"]
