"""sysctls through /proc/sys (pyroute2 has no sysctl helper)."""

from __future__ import annotations

import errno
import os
import re

from providers.errors import HostError, PrivilegeError
from providers.linux.sysctl_keys import split_key
from providers.model import SysctlValue

PROC_SYS = "/proc/sys"
_INTEGER = re.compile(r"^-?[0-9]+$")


class SysctlTree:
    def __init__(self, root: str = PROC_SYS) -> None:
        self.root = root

    def path(self, key: str) -> str:
        return os.path.join(self.root, *split_key(key))

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def read(self, key: str) -> SysctlValue:
        try:
            with open(self.path(key), encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except FileNotFoundError:
            raise HostError(f"sysctl {key} does not exist on this host") from None
        except PermissionError:
            raise PrivilegeError(f"cannot read sysctl {key}: permission denied") from None
        except OSError as exc:
            raise HostError(f"cannot read sysctl {key}: {exc.strerror}") from None
        return parse_value(text)

    def write(self, key: str, value: SysctlValue) -> None:
        try:
            with open(self.path(key), "w", encoding="ascii") as handle:
                handle.write(f"{value}\n")
        except PermissionError:
            raise PrivilegeError(
                f"cannot write sysctl {key}: permission denied (run as root)"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EROFS:
                raise HostError(
                    f"cannot write sysctl {key}: /proc/sys is read-only here "
                    "(a container without CAP_NET_ADMIN in its own network namespace?)"
                ) from None
            raise HostError(f"the kernel refused {key} = {value}: {exc.strerror}") from None


def parse_value(text: str) -> SysctlValue:
    """An integer when the kernel prints one, else whitespace-normalised text."""
    stripped = text.strip()
    if _INTEGER.match(stripped):
        return int(stripped)
    return " ".join(stripped.split())
