"""kdebug kernel build --preset (data in launch/kconfig/presets.toml) and the
sanitizers kdebug doctor reads from a kernel's configuration."""

from __future__ import annotations

import pytest

from kdebug.errors import UsageError
from kdebug.kbuild import DEFAULT_FRAGMENT, load_presets, parse_fragment, preset_fragments
from kdebug.kconfig import check_sanitizers, load_sanitizers, parse_kconfig
from tests.unit.test_cli import one_line_error, run_kdebug


def _merged(frags) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in frags:
        out.update(parse_fragment(f.read_text()))
    return out


@pytest.mark.parametrize("name,options", [
    ("kasan", ("KASAN", "KASAN_GENERIC", "SLUB", "BUG", "STACKTRACE")),
    ("kfence", ("KFENCE", "SLUB", "BUG")),
    ("ubsan", ("UBSAN", "UBSAN_SHIFT", "UBSAN_BOUNDS", "BUG")),
    ("lockdep", ("PROVE_LOCKING", "DEBUG_ATOMIC_SLEEP", "BUG")),
    ("sanitizers", ("KASAN", "KFENCE", "UBSAN", "PROVE_LOCKING", "DEBUG_LIST", "BUG_ON_DATA_CORRUPTION")),
])
def test_presets_layer_on_debug_config(name, options):
    frags = preset_fragments(name)
    assert frags[0] == DEFAULT_FRAGMENT
    merged = _merged(frags)
    assert merged["CONFIG_DEBUG_INFO"] == "y"
    for opt in options:
        assert merged[f"CONFIG_{opt}"] == "y", opt
    # tinyconfig picks SLOB, which KASAN and KFENCE cannot use
    if "SLUB" in options:
        assert merged["CONFIG_SLOB"] == "n"


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UsageError, match=r"unknown preset 'nope' \(known: kasan, kfence, lockdep, sanitizers, ubsan\)"):
        preset_fragments("nope")
    line = one_line_error(run_kdebug("kernel", "build", "--preset", "nope"))
    assert "unknown preset 'nope'" in line and "sanitizers" in line


def test_a_preset_naming_a_missing_fragment_is_refused(tmp_path):
    bad = tmp_path / "presets.toml"
    bad.write_text('[x]\nfragments = ["no-such-fragment"]\n')
    with pytest.raises(UsageError, match="missing"):
        load_presets(bad)


def test_doctor_reads_sanitizers_from_a_config():
    """The sanitizer preset's own fragments, read as a kernel's .config."""
    text = "".join(f.read_text() for f in preset_fragments("sanitizers"))
    checks = {c.sanitizer.name: c for c in check_sanitizers(parse_kconfig(text), load_sanitizers())}
    assert {n for n, c in checks.items() if c.present} == {
        "kasan", "kfence", "ubsan", "lockdep", "list-debug", "atomic-sleep", "stack-guard"}
    assert checks["kasan"].settings == ("KASAN_GENERIC", "KASAN_OUTLINE", "KASAN_VMALLOC")
    assert checks["ubsan"].settings == ("UBSAN_BOUNDS", "UBSAN_SHIFT", "UBSAN_SANITIZE_ALL")
    # debug.config alone has none of them
    bare = check_sanitizers(parse_kconfig(DEFAULT_FRAGMENT.read_text()), load_sanitizers())
    assert not [c.sanitizer.name for c in bare if c.present]


def test_kfence_built_in_but_idle_says_so():
    cfg = parse_kconfig("CONFIG_KFENCE=y\nCONFIG_KFENCE_SAMPLE_INTERVAL=0\nCONFIG_KFENCE_NUM_OBJECTS=255\n")
    kfence = next(c for c in check_sanitizers(cfg, load_sanitizers()) if c.sanitizer.name == "kfence")
    assert kfence.present and kfence.settings == ("KFENCE_SAMPLE_INTERVAL=0", "KFENCE_NUM_OBJECTS=255")
    assert "kfence.sample_interval" in kfence.note
