import pytest

from kdebug.errors import UsageError
from kdebug.plan.cmdline import build_cmdline, check_crashkernel, cmdline_value, crashkernel_mb


@pytest.mark.parametrize("value,mem,mb", [
    ("128M", 1024, 128), ("1G", 4096, 1024), ("256M@16M", 1024, 256), ("160M,high", 2048, 160),
    ("512M-2G:96M,2G-:256M", 1024, 96), ("512M-2G:96M,2G-:256M", 4096, 256),
    ("1G-2G:128M", 512, 0),
])
def test_crashkernel_sizes(value, mem, mb):
    assert crashkernel_mb(value, mem) == mb


def test_crashkernel_floor_and_ceiling():
    assert check_crashkernel("80M", 1024) == 80
    with pytest.raises(UsageError, match="at least 80M"):
        check_crashkernel("72M", 1024)
    with pytest.raises(UsageError, match="more than half"):
        check_crashkernel("768M", 1024)
    with pytest.raises(UsageError, match="reserves nothing"):
        check_crashkernel("2G-:128M", 1024)
    with pytest.raises(UsageError, match="bad crashkernel"):
        check_crashkernel("lots", 1024)


def test_cmdline_last_key_wins_console_repeats():
    c = build_cmdline(["console=tty0", "console=ttyS0", "panic=-1"], crashkernel="128M",
                      nokaslr=True, root="/dev/vda", extra=["panic=5 quiet", "nokaslr"])
    assert c.split() == ["console=tty0", "console=ttyS0", "crashkernel=128M", "nokaslr",
                         "root=/dev/vda", "rw", "panic=5", "quiet"]
    assert cmdline_value(c, "panic") == "5"
