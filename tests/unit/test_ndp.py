"""The neighbour solicitation tests/ndp.py builds, against bytes the kernel put on the wire.

The expected message was captured (AF_PACKET, in a namespace) as Linux 6.18 sent it from
the helper's raw ICMPv6 socket: the kernel recomputes the checksum of every raw ICMPv6
message, so equal bytes mean the helper's own checksum is right.
"""

from __future__ import annotations

from tests import ndp

SOURCE, TARGET, MAC = "2001:db8:77::1", "2001:db8:77::2", "02:00:00:00:77:01"
ON_THE_WIRE = "8700a4380000000020010db80077000000000000000000020101020000007701"


def test_solicited_node_address() -> None:
    assert ndp.solicited_node(TARGET) == "ff02::1:ff00:2"
    assert ndp.solicited_node("2001:db8:10::abcd:1234") == "ff02::1:ffcd:1234"


def test_solicitation_is_what_the_kernel_sends() -> None:
    assert ndp.solicitation(SOURCE, TARGET, MAC).hex() == ON_THE_WIRE


def test_checksum_of_a_message_with_its_checksum_is_zero() -> None:
    message = ndp.solicitation(SOURCE, TARGET, MAC)
    assert ndp.checksum(SOURCE, ndp.solicited_node(TARGET), message) == 0
    # another source: another checksum
    assert ndp.solicitation("2001:db8:77::3", TARGET, MAC)[2:4] != message[2:4]


def test_parse_advert_reads_target_and_link_layer_address() -> None:
    target = bytes.fromhex("20010db8001000000000000000000010")
    advert = (
        bytes([136, 0, 0, 0, 0x60, 0, 0, 0])
        + target
        + bytes([2, 1])
        + bytes.fromhex("020000000011")
    )
    got = ndp.parse_advert("br0", advert, "2001:db8:10::10", 255)
    assert got == ndp.Advert("br0", "2001:db8:10::10", "02:00:00:00:00:11", "2001:db8:10::10", 255)
    assert ndp.parse_advert("br0", bytes([135]) + advert[1:], "::", 255) is None


def test_output_round_trip() -> None:
    text = (
        "NS br0 2001:db8:10::10 sent\n"
        "NA br0 2001:db8:2::11 02:00:00:00:00:11 2001:db8:2::11 255\n"
        "noise\n"
        "NA r2 2001:db8:3::12 - 2001:db8:3::12 255\n"
    )
    sent, adverts = ndp.parse_output(text)
    assert sent == [("br0", "2001:db8:10::10")]
    assert [(a.device, a.target, a.lladdr) for a in adverts] == [
        ("br0", "2001:db8:2::11", "02:00:00:00:00:11"),
        ("r2", "2001:db8:3::12", ""),
    ]


def test_argv() -> None:
    command = ndp.argv([("br0", "2001:db8:2::1", ["2001:db8:10::10", "2001:db8:2::11"])], 1.0)
    assert command[:2] == ["python3", "-S"] and command[2].endswith("tests/ndp.py")
    assert command[3:] == ["--wait", "1", "br0", "2001:db8:2::1", "2001:db8:10::10,2001:db8:2::11"]
