"""dsrctl's nftables table (``nft:mss``): the MSS clamp of tunnel-mode DSR.

One resource, the whole ``table inet dsrctl`` (providers/linux/nft.py): its value is the
clamp per IP version, ``{"ipv4": {"mss": N, "sources": [...]}, "ipv6": {...}}``. It is
put in place in HARDEN, before any VIP is added, so that the first SYN-ACK from a new
VIP is already clamped, and removed in RELAX, after the VIPs are gone. The table is
replaced whole, in one nft transaction, so the step is atomic and its inverse is the
table as it was observed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from dsrctl.kinds.base import Desired, Plain, ResourceKind, Rich, Value
from dsrctl.model import HostState, MssClamp, ReadScope
from dsrctl.steps import Phase, Step
from state.ownership import Ownership, OwnershipRecord

TABLE = "mss"  # the name in the resource id: nft:mss
RESOURCE = f"nft:{TABLE}"


class MssWriter(Protocol):
    def apply_mss(self, clamp: MssClamp | None) -> None: ...


@dataclass(frozen=True)
class MssStep(Step):
    kind: ClassVar[str] = "nft"

    def apply(self, host: MssWriter) -> None:
        host.apply_mss(self.after)

    def inverse(self) -> Step:
        """The table as it was, less what someone else had put in it: dsrctl writes only
        its clamp and cannot put back items it does not understand (they were drift)."""
        undo = super().inverse()
        if isinstance(undo.after, MssClamp) and undo.after.other:
            kept = dataclasses.replace(undo.after, other=())
            note = "rollback; items in the table that dsrctl did not write are not restored"
            return dataclasses.replace(undo, after=kept, note=note)
        return undo

    def show(self, value: Any) -> Any:
        return value.plain() if isinstance(value, MssClamp) else value

    def to_record(self) -> dict[str, Any]:
        return self.to_json()  # show() is the record: plain data

    @classmethod
    def decode(cls, value: Any) -> Any:
        return None if value is None else MssClamp.from_record(value)


class MssKind(ResourceKind):
    name = "nft"
    step = MssStep

    def way_back(self, desired: Desired, name: str, record: OwnershipRecord) -> None:
        if record.created:
            desired.mss[name] = None
        elif record.original is not None:
            desired.mss[name] = MssClamp.from_record(record.original)

    def scope(self, scope: ReadScope, desired: Desired, ownership: Ownership) -> ReadScope:
        return dataclasses.replace(scope, mss=bool(desired.mss))

    def add_desired(self, desired: Desired, plain: Plain, rich: Rich) -> None:
        for name, clamp in desired.mss.items():
            if clamp is not None:
                plain[f"nft:{name}"] = clamp.plain()
                rich[f"nft:{name}"] = clamp

    def add_current(
        self, current: HostState, desired: Desired, ownership: Ownership, plain: Plain, rich: Rich
    ) -> None:
        if current.mss is not None and TABLE in desired.mss:
            plain[RESOURCE] = current.mss.plain()
            rich[RESOURCE] = current.mss

    def make_step(
        self, resource: str, before: Value | None, after: Value | None, desired: Desired
    ) -> Step:
        if after is None:
            note = "created by dsrctl, no longer in the spec"
            return MssStep(resource, before, after, Phase.RELAX, note=note)
        return MssStep(
            resource, before, after, Phase.HARDEN, note=desired.step_notes.get(resource, "")
        )

    def warnings(self, desired: Desired, current: HostState) -> list[str]:
        if current.mss is None or not current.mss.other or desired.mss.get(TABLE) is None:
            return []
        return [
            f"table inet dsrctl holds {len(current.mss.other)} item(s) dsrctl did not write "
            "(someone edited dsrctl's nftables table); apply replaces the whole table"
        ]


KIND = MssKind()
