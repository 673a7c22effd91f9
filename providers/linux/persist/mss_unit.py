"""The MSS clamp of tunnel mode after a reboot: dsrctl's nft file and the unit that loads it.

Independent of the VIP backend (``linux.persist.addresses``): whatever brings the VIPs
back, the clamp is an nftables table, and nothing but ``nft -f`` brings that back. The
file holds the very script apply runs (providers/linux/nft.py ``script``): it replaces
``table inet dsrctl`` whole, so loading it twice is harmless.

Ordering: ``After=nftables.service`` because Debian's and Fedora's nftables.conf start
with ``flush ruleset``, which would delete a table loaded before it;
``Before=network-pre.target`` has the clamp in place before the network (and the VIPs'
services) come up. ``DefaultDependencies=no`` as for dsrctl-vips.service. Enabled as
``systemctl enable`` does it: a link in ``multi-user.target.wants/``.
"""

from __future__ import annotations

from providers.linux import nft
from providers.linux.persist import MANAGED, Rendered, comment_text
from providers.model import FileState, MssClamp

NFT_FILE = "/etc/dsrctl/mss.nft"
UNIT_NAME = "dsrctl-mss.service"
UNIT_DIR = "/etc/systemd/system"
UNIT_PATH = f"{UNIT_DIR}/{UNIT_NAME}"
WANTS_LINK = f"{UNIT_DIR}/multi-user.target.wants/{UNIT_NAME}"
NFT = "/usr/sbin/nft"  # where Debian, Ubuntu, Fedora and RHEL install it


def header(spec_path: str) -> list[str]:
    return [
        f"{MANAGED}{comment_text(spec_path)}; edits here are reverted by 'dsrctl apply'.",
        "The MSS clamp of tunnel-mode DSR, loaded again at boot (see dsrctl docs/tunnel-mode.md).",
    ]


def nft_file(clamp: MssClamp, spec_path: str) -> FileState:
    return FileState(nft.script(clamp, header(spec_path)).encode(), 0o644)


def unit_text(spec_path: str) -> str:
    lines = [
        *(f"# {line}" for line in header(spec_path)),
        "[Unit]",
        "Description=DSR MSS clamp for tunnel mode (dsrctl)",
        "Documentation=man:nft(8)",
        "DefaultDependencies=no",
        "After=local-fs.target nftables.service",
        "Before=network-pre.target shutdown.target",
        "Wants=network-pre.target",
        "Conflicts=shutdown.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        f"ExecStart={NFT} -f {NFT_FILE}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def render(clamp: MssClamp, spec_path: str, systemd: bool) -> Rendered:
    """The nft file, and with systemd the unit and its wants link (paths as seen from the
    root)."""
    rendered = Rendered(files={NFT_FILE: nft_file(clamp, spec_path)}, dirs=("/etc/dsrctl",))
    if systemd:
        rendered.files[UNIT_PATH] = FileState(unit_text(spec_path).encode(), 0o644)
        rendered.symlinks[WANTS_LINK] = UNIT_PATH
        rendered.dirs += (WANTS_LINK.rsplit("/", 1)[0],)
    return rendered
