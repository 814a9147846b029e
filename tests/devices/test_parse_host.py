"""parse_host: USER@HOST[:PORT] as --host takes it."""

from __future__ import annotations

import pytest

from devices import HostSpecError, parse_host


@pytest.mark.parametrize("text, expected", [
    ("pi@raspberrypi.local", ("pi", "raspberrypi.local", None)),
    ("pi@192.168.1.20:2222", ("pi", "192.168.1.20", 2222)),
    ("jetson", (None, "jetson", None)),
    ("board_1:22", (None, "board_1", 22)),
    ("root@[::1]:2200", ("root", "::1", 2200)),
    ("[fe80::1%eth0]", (None, "fe80::1%eth0", None)),
    ("  me@host  ", ("me", "host", None)),
    ("first.last@corp@host", ("first.last@corp", "host", None)),
])
def test_good_hosts(text, expected):
    assert parse_host(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("", "empty host"),
    ("pi@", "bad host name ''"),
    ("@host", "bad user name ''"),
    ("pi@host:", "port must be 1-65535"),
    ("pi@host:0", "port must be 1-65535"),
    ("pi@host:70000", "port must be 1-65535"),
    ("pi@host:ssh", "port must be 1-65535"),
    ("pi@::1", "put an IPv6 address in brackets"),
    ("pi@[::1", "unbalanced brackets"),
    ("pi@[::1]x", "unbalanced brackets"),
    ("pi@[host]:22", "not an IPv6 address"),
    ("pi@bad host", "bad host name"),
    ("pi@host;touch x", "bad host name"),
    ("pi@-oProxyCommand=x", "bad host name"),
    ("p i@host", "bad user name"),
    ("$(id)@host", "bad user name"),
])
def test_bad_hosts_say_why_in_one_line(text, reason):
    with pytest.raises(HostSpecError, match="expected USER@HOST|empty host") as info:
        parse_host(text)
    assert reason in str(info.value) and "\n" not in str(info.value)
