"""Hostile spec content: refused at validate with one line naming file, key and value, or
escaped wherever it reaches a generated file (issue 9, findings 5, 9 and 10).

The real parsers of every generated file read hostile renderings in
tests/netns/test_hostile_backends.py; here are the spec's refusals, the backends' own
last line of defence, and the real CLI.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dsrctl.errors import SpecError
from dsrctl.linux.desired import vip_state
from dsrctl.model import AddressState
from dsrctl.spec import load_spec, parse_spec
from providers.linux.persist import (
    Detection,
    RenderRequest,
    ifcfg,
    ifupdown,
    managed_header,
    netplan,
    networkd,
    networkmanager,
    systemd_unit,
)

SPEC = "/etc/dsrctl/dsrctl.toml"
# Characters some reader of a generated file takes as the end of a line: systemd (\n, \r,
# NUL), the shell and ifupdown (\n), YAML 1.1 (NEL, U+2028, U+2029), str.splitlines (all
# of them and \v, \f, \x1c-\x1e).
LINE_BREAKS = ["\n", "\r", "\x00", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
# Characters with a meaning in some backend's syntax: quoting, systemd specifiers and
# variables, shell substitution and separators, comments, globs, keyfile lists.
SYNTAX = ['"', "'", "%", "$", "`", ";", " ", "\t", "\\", "#", "*", "?", "[", "=", ",", "@", "/"]


def spec_with(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"version": 1, "vip": [{"address": "192.0.2.100"}]}
    data.update(changes)
    return data


def refuse(data: dict[str, Any], path: str = SPEC) -> SpecError:
    with pytest.raises(SpecError) as caught:
        parse_spec(data, path)
    assert "\n" not in str(caught.value)
    return caught.value


# Finding 5: labels and interface names


@pytest.mark.parametrize("char", [*SYNTAX, *LINE_BREAKS, "é", "\u202e"])
def test_a_label_with_a_character_of_any_backends_syntax_is_refused(char: str) -> None:
    label = f"lo:a{char}b"
    error = refuse(spec_with(vip=[{"address": "192.0.2.100", "label": label}]))
    assert error.key == "vip[0].label"
    assert error.value == label
    assert "labels cannot contain" in error.reason
    assert repr(char) in error.reason


@pytest.mark.parametrize("char", [*SYNTAX, ":", *LINE_BREAKS, "é"])
def test_an_interface_name_with_a_character_of_any_backends_syntax_is_refused(char: str) -> None:
    name = f"d{char}0"
    error = refuse(spec_with(linux={"interface": name}))
    assert (error.key, error.value) == ("linux.interface", name)
    assert "interface names cannot contain" in error.reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("-d0", "cannot begin with '-'"),
        (".d0", "cannot begin with '-' or '.'"),
        ("1234", "digits"),
    ],
)
def test_interface_names_that_tools_misread_are_refused(name: str, reason: str) -> None:
    assert reason in refuse(spec_with(linux={"interface": name})).reason


def test_a_label_with_nothing_after_the_colon_is_refused() -> None:
    error = refuse(spec_with(vip=[{"address": "192.0.2.100", "label": "lo:"}]))
    assert "a name after the colon" in error.reason


@pytest.mark.parametrize(
    ("interface", "label"),
    [("lo", "lo:1"), ("lo", "lo:web_1.a-b"), ("dsr-0", "dsr-0:v"), ("eth0.100", "eth0.100:7")],
)
def test_names_every_backend_takes_stay_accepted(interface: str, label: str) -> None:
    spec = parse_spec(
        spec_with(vip=[{"address": "192.0.2.100", "label": label}], linux={"interface": interface})
    )
    assert (spec.linux.interface, spec.vips[0].label) == (interface, label)


# Finding 5: the spec's path, and the header of every generated file


@pytest.mark.parametrize("brk", [*LINE_BREAKS, "\udcff", "\u202e"])
def test_a_spec_path_with_a_control_character_is_refused(tmp_path: Path, brk: str) -> None:
    path = f"{tmp_path}/a{brk}ExecStartPre=/bin/true.toml"
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    message = str(caught.value)
    assert message.isprintable(), message
    assert "the spec's path contains" in message
    assert repr(brk) in message
    with pytest.raises(SpecError):
        parse_spec(spec_with(), path)


def test_a_relative_spec_path_is_checked_as_the_headers_name_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "d\nkernel.core_pattern=|sh"
    directory.mkdir()
    (directory / "dsrctl.toml").write_text('version = 1\n[[vip]]\naddress = "192.0.2.1"\n')
    monkeypatch.chdir(directory)
    with pytest.raises(SpecError) as caught:
        load_spec("dsrctl.toml")
    assert "'\\n'" in str(caught.value)


@pytest.mark.parametrize("brk", [*LINE_BREAKS, "\udcff"])
def test_the_header_escapes_every_line_break_of_the_spec_path(brk: str) -> None:
    header = managed_header(f"/etc/dsrctl/a{brk}[Service]{brk}ExecStartPre=/x.toml")
    assert len(header) == 2
    assert all(line.isprintable() and line.startswith("# ") for line in header)
    assert repr(brk)[1:-1] in header[0]
    "\n".join(header).encode()  # an undecodable byte of the path cannot stop the write


def request(states: list[AddressState], interface: str = "lo", **facts: Any) -> RenderRequest:
    detection = Detection(root="/", interface=interface, live=False, systemd=True, **facts)
    return RenderRequest(tuple(states), interface, SPEC, detection)


BACKENDS = (systemd_unit, networkd, networkmanager, ifupdown, ifcfg)


@pytest.mark.parametrize("char", [*SYNTAX, "\n", "\r", "\x00"])
def test_no_backend_writes_an_interface_name_the_spec_would_refuse(char: str) -> None:
    # The spec refuses these first; a caller that skipped it gets no file at all.
    name = f"l{char}o"
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="refusing to write the name"):
            backend.render(request([vip_state("192.0.2.100", 32, None, name)], name))


@pytest.mark.parametrize("char", ['"', "'", "%", "$", "`", ";", " ", "\n"])
def test_no_backend_writes_a_label_the_spec_would_refuse(char: str) -> None:
    states = [vip_state("192.0.2.100", 32, f"lo:a{char}b", "lo")]
    for backend in (systemd_unit, networkd, ifupdown, ifcfg):  # NetworkManager keeps none
        with pytest.raises(ValueError, match="refusing to write the name"):
            backend.render(request(states))


def test_netplan_quotes_what_it_writes() -> None:
    states = [vip_state("192.0.2.100", 32, "lo:1", "lo")]
    content = netplan.render(request(states, netplan_id='x"\n- y')).files[netplan.DROPIN]
    assert '    "x\\"\\n- y":\n' in content.content.decode()


# Finding 10: addresses that cannot work as a VIP


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("0.1.2.3", "0.0.0.0/8"),
        ("0.255.255.255", "0.0.0.0/8"),
        ("::192.0.2.1", "IPv4-compatible"),
        ("::c000:201", "IPv4-compatible"),
        ("::2", "IPv4-compatible"),
        ("fec0::1", "site-local"),
        ("feff:ffff::1", "site-local"),
    ],
)
def test_addresses_that_cannot_work_are_refused_with_the_reason(address: str, reason: str) -> None:
    error = refuse(spec_with(vip=[{"address": address}]))
    assert (error.key, error.value) == ("vip[0].address", address)
    assert reason in error.reason


@pytest.mark.parametrize(
    "address",
    [
        "192.0.2.1",
        "198.18.0.1",
        "198.19.255.254",
        "2001:db8::1",
        "10.0.0.1",
        "172.16.5.4",
        "100.64.0.1",
        "1.0.0.1",
        "203.0.113.9",
        "fd00::1",
        "2002:c000:201::1",  # 6to4
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # teredo
        "2600::1",
        "::ffff:0:c000:201",  # SIIT, not IPv4-mapped or -compatible
    ],
)
def test_ordinary_and_documentation_addresses_stay_accepted(address: str) -> None:
    assert parse_spec(spec_with(vip=[{"address": address}])).vips[0].address.compressed


# Path keys: normal, and never out of linux.persist.root


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("sysctl_file", "/../outside/evil.conf", "'..' is not allowed"),
        ("sysctl_file", "/etc/sysctl.d/../../evil.conf", "'..' is not allowed"),
        ("sysctl_file", "//etc/sysctl.d/90-dsrctl.conf", "write '/etc/sysctl.d/90-dsrctl.conf'"),
        ("sysctl_file", "/etc/./sysctl.d/90-dsrctl.conf", "not a normal path"),
        ("sysctl_file", "/etc/sysctl.d//90-dsrctl.conf", "not a normal path"),
        ("sysctl_file", "/etc/sysctl.d/90\n-dsrctl.conf", "control characters"),
        ("sysctl_file", "/etc/sysctl.d/.90-dsrctl.conf", "begin with '.'"),
        ("root", "/srv/../etc", "'..' is not allowed"),
        ("root", "/srv/image/", "write '/srv/image'"),
        ("root", "/srv//image", "not a normal path"),
        ("root", "/srv/\rimage", "control characters"),
    ],
)
def test_path_keys_must_be_normal_and_stay_under_the_root(
    key: str, value: str, reason: str
) -> None:
    error = refuse(spec_with(linux={"persist": {key: value}}))
    assert (error.key, error.value) == (f"linux.persist.{key}", value)
    assert reason in error.reason


# sysctl values that reach the sysctl.d file


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1024\x0065000", "control characters ('\\x00')"),
        ("1024\x0b65000", "control characters"),
        ("1024\u202865000", "control characters"),
        ("1024\x1b[2J", "control characters"),
        ("1024\r65000", "line break"),
        (" 1024 65000", "whitespace"),
        ("1024 65000\t", "whitespace"),
        ("", "empty"),
        ("  ", "empty"),
    ],
)
def test_sysctl_values_that_a_sysctl_d_line_cannot_hold_are_refused(
    value: str, reason: str
) -> None:
    key = "net.ipv4.ip_local_port_range"
    error = refuse(spec_with(linux={"sysctl": {key: value}}))
    assert error.key == f'linux.sysctl."{key}"'
    assert reason in error.reason


def test_a_sysctl_name_that_sysctl_d_reads_as_a_flag_is_refused() -> None:
    error = refuse(spec_with(linux={"sysctl": {"-net.ipv4.ip_forward": 1}}))
    assert "cannot begin with '-'" in error.reason


def test_tabs_and_punctuation_inside_a_sysctl_value_stay_accepted() -> None:
    values = {"net.ipv4.tcp_rmem": "4096\t131072\t6291456", "net.ipv4.ip_local_port_range": "1 2"}
    spec = parse_spec(spec_with(linux={"sysctl": values}))
    assert dict(spec.linux.sysctl) == values


# Finding 9: malformed TOML ends as one SpecError line naming the file


MALFORMED: dict[str, str | bytes] = {
    "nested arrays": "a = " + "[" * 10_000,
    "nested inline tables": "a = " + "{b = " * 10_000,
    "decimal integer of 5000 digits": "version = " + "1" * 5000,
    "hex integer of 16000 bits": "version = 0x" + "f" * 4000,
    "integer past 64 bits": "version = 9223372036854775808",
    "negative integer past 64 bits": "version = -9223372036854775809",
    "binary integer in a sysctl": (
        'version = 1\n[[vip]]\naddress = "192.0.2.1"\n[linux.sysctl]\n'
        '"net.ipv4.ip_forward" = 0b' + "1" * 70
    ),
    "NUL byte": 'version = 1\n[[vip]]\naddress = "192.0.2.1\x00"\n',
    "key with a line break": 'version = 1\n"a\\nb" = 1\n',
    "table key with a line break": 'version = 1\n[[vip]]\naddress = { "x\\ny" = 1 }\n',
    "not UTF-8": b"version = 1\n# \xff\n",
    "only a BOM and garbage": "\ufeff[[[",
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_content_is_one_spec_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path = tmp_path / "dsrctl.toml"
    content = MALFORMED[case]
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(SpecError) as caught:
        load_spec(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert message.isprintable(), message
    assert len(message) < 400


def test_a_spec_with_a_bom_is_read(tmp_path: Path) -> None:
    path = tmp_path / "dsrctl.toml"
    path.write_bytes(b'\xef\xbb\xbfversion = 1\n[[vip]]\naddress = "192.0.2.1"\n')
    assert load_spec(str(path)).vips[0].cidr == "192.0.2.1/32"


def limited_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null"])
def test_a_device_is_not_read_as_a_spec(path: str) -> None:
    # In a child with 1 GiB of address space: reading /dev/zero whole would exhaust it.
    code = (
        "import sys\nfrom dsrctl.spec import load_spec\n"
        "try:\n    load_spec(sys.argv[1])\nexcept Exception as exc:\n    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, path],
        capture_output=True,
        text=True,
        preexec_fn=limited_memory,
        timeout=60,
    )
    assert result.stdout == f"{path}: not a regular file\n", result.stdout + result.stderr


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "dsrctl.toml"
    path.write_bytes(b"#" * (2 << 20))
    with pytest.raises(SpecError, match="larger than"):
        load_spec(str(path))


# The same through the real CLI: exit 1, one line naming file, key and value, no traceback

BASE = 'version = 1\n[[vip]]\naddress = "192.0.2.100"\n'
CLI_REFUSALS: dict[str, tuple[str, str]] = {
    "quote in a label": (
        BASE + 'label = "lo:a\\"b"\n',
        'vip[0].label = "lo:a\\"b": labels cannot contain \'"\'',
    ),
    "specifier in a label": (BASE + 'label = "lo:%n"\n', 'vip[0].label = "lo:%n": labels'),
    "substitution in a label": (BASE + 'label = "lo:$(id)"\n', 'vip[0].label = "lo:$(id)"'),
    "quote in an interface": (
        BASE + '[linux]\ninterface = "l\'o"\n',
        'linux.interface = "l\'o": interface names cannot contain',
    ),
    "IPv4-compatible VIP": (
        'version = 1\n[[vip]]\naddress = "::192.0.2.1"\n',
        'vip[0].address = "::192.0.2.1": an IPv4-compatible IPv6 address',
    ),
    "this-network VIP": (
        'version = 1\n[[vip]]\naddress = "0.1.2.3"\n',
        'vip[0].address = "0.1.2.3": an address in 0.0.0.0/8',
    ),
    "site-local VIP": (
        'version = 1\n[[vip]]\naddress = "fec0::1"\n',
        'vip[0].address = "fec0::1": a site-local address',
    ),
    "sysctl file out of the root": (
        BASE + '[linux.persist]\nsysctl_file = "/../outside/evil.conf"\n',
        "linux.persist.sysctl_file = \"/../outside/evil.conf\": '..' is not allowed",
    ),
    "NUL in a sysctl value": (
        BASE + '[linux.sysctl]\n"net.ipv4.ip_local_port_range" = "1\\u0000kernel.x=1"\n',
        'linux.sysctl."net.ipv4.ip_local_port_range" = "1\\u0000kernel.x=1": a sysctl value',
    ),
    "nested TOML": ("a = " + "[" * 10_000, "invalid TOML: arrays or inline tables nested"),
    "huge integer": ("version = 0x" + "f" * 4000, "version: an integer of 16000 bits"),
    "key with a line break": (BASE + '"a\\nb" = 1\n', 'vip[0]."a\\nb" = 1: unknown key'),
}


def validate(path: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DSRCTL_STATE_DIR": str(cwd / "state"), "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "dsrctl", "validate", path],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize("case", list(CLI_REFUSALS))
def test_the_cli_refuses_hostile_content_in_one_line(tmp_path: Path, case: str) -> None:
    content, expected = CLI_REFUSALS[case]
    path = tmp_path / "dsrctl.toml"
    path.write_text(content)
    result = validate(str(path), tmp_path)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.startswith(f"error: {path}: {expected}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_refuses_a_spec_path_with_a_line_break(tmp_path: Path) -> None:
    directory = tmp_path / "x\n[Service]\nExecStartPre=touch canary\n"
    directory.mkdir()
    path = directory / "dsrctl.toml"
    path.write_text(BASE)
    result = validate(str(path), tmp_path)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "x\\n[Service]\\nExecStartPre=touch canary\\n/dsrctl.toml: the spec's path" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_the_sysctl_file_header_cannot_start_a_line_of_its_own() -> None:
    """The sysctl.d header is built apart from the backends' headers; a line break in the
    spec path used to start a `kernel.core_pattern=|...` line of its own."""
    from dsrctl.linux.desired import sysctl_file_content

    text = sysctl_file_content(
        "/srv/x\nkernel.core_pattern=|/tmp/evil\r\u2028", {"net.ipv4.conf.all.arp_ignore": 1}
    ).decode()
    lines = text.splitlines()
    assert len(lines) == 3
    assert lines[2] == "net.ipv4.conf.all.arp_ignore = 1"
    assert all(line.startswith("#") for line in lines[:2])
