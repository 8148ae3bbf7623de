"""A debuginfod client: fetch a debug file by build-id into kdebug's cache.

The protocol is elfutils' (``GET <server>/buildid/<hex>/debuginfo``); the
servers are ``DEBUGINFOD_URLS`` (space-separated) and the stall timeout is
``DEBUGINFOD_TIMEOUT`` (seconds without a byte), as every debuginfod client
reads them. The standard library's http.client does the HTTP: it keeps the
connect timeout apart from the stall timeout (urllib has one for both) and
adds no dependency; proxies are not used (debuginfod servers of a fleet are
on its own network).

A download is written to ``<id>.part`` beside its place in the cache, under a
lock; it is synced, checked (ELF whole, its GNU build-id note the one asked
for) and only then renamed into place, so a file in the cache is always
whole and right. A transfer that was cut leaves its ``.part``: the next fetch
asks for the rest (a ranged GET, which debuginfod answers with 206) and
checks the whole file. A file that fails the check is deleted.
"""

from __future__ import annotations

import errno
import fcntl
import http.client
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from kdebug import elf
from kdebug.errors import KdebugError, KernelError

CHUNK = 1 << 20
CONNECT_TIMEOUT = 10.0
#: elfutils' client waits 90 s for a byte; a post-mortem user waits less.
STALL_TIMEOUT = 30.0
MAX_REDIRECTS = 5


class DebuginfodError(KernelError):
    """No debuginfod server gave a verified file (down, slow, 404, cut, wrong file)."""

    stage = "debuginfod"


class CacheError(KdebugError):
    """kdebug's cache cannot take a download (full, read-only)."""

    stage = "cache"


@dataclass(frozen=True)
class FetchProgress:
    """One step of a download, for the CLI to draw."""

    what: str  # "vmlinux" or a module's name
    build_id: str
    url: str
    done: int  # bytes on disk, a resumed part included
    total: int | None  # None while the size is unknown
    seconds: float  # since this transfer began
    resumed_from: int = 0
    finished: bool = False

    @property
    def rate(self) -> float:
        """Bytes per second of this transfer (a resumed part not counted)."""
        return (self.done - self.resumed_from) / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[FetchProgress], None]


def servers(env: dict[str, str] | None = None) -> tuple[str, ...]:
    """The servers ``DEBUGINFOD_URLS`` names, in order, without trailing '/'."""
    env = os.environ if env is None else env
    return tuple(u.rstrip("/") for u in env.get("DEBUGINFOD_URLS", "").split() if u.strip("/"))


def stall_timeout(env: dict[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    try:
        value = float(env.get("DEBUGINFOD_TIMEOUT", STALL_TIMEOUT))
    except ValueError:
        return STALL_TIMEOUT
    return value if value > 0 else STALL_TIMEOUT


def buildid_url(server: str, build_id: str) -> str:
    return f"{server}/buildid/{quote(build_id)}/debuginfo"


def cache_path(cache: Path, build_id: str) -> Path:
    """Where a debug file lives in the cache: the ``.build-id`` layout that
    drgn, gdb and crash search (``.build-id/xx/yyyy.debug``)."""
    return cache / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"


# --- verification ------------------------------------------------------------

def debug_file_build_id(path: Path) -> str | None:
    """The GNU build-id of an ELF file: from its program headers' notes (a
    vmlinux) or its note sections (a module, ET_REL). FormatError if the
    file is no whole ELF (its section table past its end)."""
    with open(path, "rb") as f:
        read_at = elf.file_reader(f)
        hdr = elf.parse_elf_header(read_at)
        size = os.fstat(f.fileno()).st_size
        sections = elf.elf_sections(read_at)
        for s in sections:
            if s.type != SHT_NOBITS and s.offset + s.size > size:
                raise elf.FormatError(f"section {s.name or '?'} ends past the file's end (cut short?)")
        for note in elf.elf_notes(read_at, hdr):
            if note.name == "GNU" and note.type == elf.NT_GNU_BUILD_ID:
                return note.desc.hex()
        for s in sections:
            if s.type == elf.SHT_NOTE and s.size < (1 << 20):
                for note in elf.iter_notes(read_at(s.offset, s.size), hdr.endian):
                    if note.name == "GNU" and note.type == elf.NT_GNU_BUILD_ID:
                        return note.desc.hex()
    return None


SHT_NOBITS = 8


def verify(path: Path, build_id: str) -> str | None:
    """None when ``path`` is a whole ELF file with ``build_id``, else why not."""
    try:
        have = debug_file_build_id(path)
    except elf.FormatError as e:
        return f"not a whole ELF file: {e}"
    except OSError as e:
        return f"unreadable: {e.strerror}"
    if have != build_id:
        return f"it has build-id {have or 'none'}, not {build_id}"
    return None


# --- the transfer --------------------------------------------------------------

def fetch(build_id: str, what: str, urls: tuple[str, ...], cache: Path, *,
          progress: Progress | None = None, connect_timeout: float = CONNECT_TIMEOUT,
          stall: float | None = None) -> tuple[Path, str]:
    """(the verified file in ``cache``, the URL it came from). Tries each
    server in turn; DebuginfodError naming what each said when none served it,
    CacheError when the cache cannot take it."""
    stall = stall_timeout() if stall is None else stall
    final = cache_path(cache, build_id)
    if final.is_file():
        return final, "cache"
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cache_error(cache, e) from None
    with _open_cache(final.with_name(final.name + ".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another kdebug fetching the same file: wait for it
        if final.is_file():
            return final, "cache"
        said = []
        for server in urls:
            url = buildid_url(server, build_id)
            try:
                _download(url, final, build_id, what, progress, connect_timeout, stall)
                return final, url
            except _ServerSaid as e:
                said.append(f"{server}: {e}")
    raise DebuginfodError(f"no debuginfod server had the debug info of {what} (build-id {build_id}): "
                          + "; ".join(said))


class _ServerSaid(Exception):
    """What one server did wrong; the next server is tried."""


class _RangeRefused(Exception):
    """416 to a resume: start again from the first byte."""


def _download(url: str, final: Path, build_id: str, what: str, progress: Progress | None,
              connect_timeout: float, stall: float) -> None:
    part = final.with_name(final.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    t0 = time.monotonic()
    try:
        resp, conn = _get(url, have, connect_timeout, stall)
    except _RangeRefused:
        part.unlink(missing_ok=True)  # the server's file is not the one the part began
        have = 0
        resp, conn = _get(url, 0, connect_timeout, stall)
    try:
        if resp.status == 206 and have:
            mode, start = "ab", have
        else:
            mode, start = "wb", 0
        length = resp.getheader("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        done = start
        last = 0.0
        with _open_cache(part, mode) as out:
            buf = bytearray(CHUNK)
            view = memoryview(buf)
            while True:
                try:
                    n = resp.readinto(buf)
                except TimeoutError:
                    raise _ServerSaid(f"no data for {stall:g} s at {_mb(done)} of {_mb(total)} "
                                      f"(slow or stalled; DEBUGINFOD_TIMEOUT sets the wait; "
                                      f"the part is kept and resumed next time)") from None
                except (OSError, http.client.HTTPException) as e:
                    raise _ServerSaid(f"transfer cut at {_mb(done)} of {_mb(total)} ({_why(e)}; the part "
                                      "is kept and resumed next time)") from None
                if not n:
                    break
                try:
                    out.write(view[:n])
                except OSError as e:
                    raise _cache_error(final.parent, e) from None
                done += n
                now = time.monotonic()
                if progress is not None and now - last >= 0.2:
                    last = now
                    progress(FetchProgress(what, build_id, url, done, total, now - t0, start))
            if total is not None and done < total:
                raise _ServerSaid(f"transfer cut at {_mb(done)} of {_mb(total)} (the part is kept and "
                                  "resumed next time)")
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as e:
                raise _cache_error(final.parent, e) from None
    finally:
        conn.close()
    bad = verify(part, build_id)
    if bad is not None:
        part.unlink(missing_ok=True)  # nothing that failed verification stays in the cache
        raise _ServerSaid(f"served a file that is not the one asked for ({bad}): not used, not cached")
    try:
        os.replace(part, final)
        dfd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise _cache_error(final.parent, e) from None
    if progress is not None:
        progress(FetchProgress(what, build_id, url, done, done, time.monotonic() - t0, start, finished=True))


def probe(build_id: str, urls: tuple[str, ...], *, connect_timeout: float = CONNECT_TIMEOUT,
          stall: float = STALL_TIMEOUT) -> tuple[str | None, int | None, list[str]]:
    """(the first URL that has ``build_id``, its size, what the others said),
    without downloading it: a GET of its first four bytes (debuginfod
    answers no HEAD), which must be ELF's magic."""
    said = []
    for server in urls:
        url = buildid_url(server, build_id)
        try:
            resp, conn = _get(url, 0, connect_timeout, stall, head=4)
        except (_ServerSaid, _RangeRefused) as e:
            said.append(f"{server}: {e or 'refused a ranged GET'}")
            continue
        try:
            magic = resp.read(4)
        except (OSError, http.client.HTTPException) as e:
            said.append(f"{server}: transfer cut ({_why(e)})")
            continue
        finally:
            conn.close()
        if magic != elf.ELF_MAGIC:
            said.append(f"{server}: serves no ELF file for it")
            continue
        # 206 says the size in Content-Range; debuginfod 0.188 ignores Range (200, whole file).
        if resp.status == 206:
            total = (resp.getheader("Content-Range") or "").rpartition("/")[2]
        else:
            total = resp.getheader("X-DEBUGINFOD-SIZE") or resp.getheader("Content-Length") or ""
        return url, int(total) if total.isdigit() else None, said
    return None, None, said


def _get(url: str, offset: int, connect_timeout: float, stall: float, head: int = 0):
    """(response, connection) for a GET of ``url`` from byte ``offset`` on
    (``head``: only that many first bytes), following redirects; _ServerSaid
    for anything but 200/206."""
    for _ in range(MAX_REDIRECTS):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _ServerSaid(f"{url} is not an http(s) URL")
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=connect_timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": "kdebug", "Accept-Encoding": "identity"}
        if offset or head:
            headers["Range"] = f"bytes={offset}-{offset + head - 1 if head else ''}"
        wait = connect_timeout
        try:
            conn.connect()
            wait = stall
            conn.sock.settimeout(stall)  # from here on: the stall timeout, per read
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise _ServerSaid(f"no answer within {wait:g} s (down or slow; DEBUGINFOD_TIMEOUT sets the "
                              "wait)") from None
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            raise _ServerSaid(f"cannot connect ({_why(e)})") from None
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            url = resp.getheader("Location")
            conn.close()
            continue
        if resp.status in (200, 206):
            return resp, conn
        conn.close()
        if resp.status == 404:
            raise _ServerSaid("404, it does not have it")
        if resp.status == 416 and offset:
            raise _RangeRefused()
        raise _ServerSaid(f"HTTP {resp.status} {resp.reason}")
    raise _ServerSaid(f"more than {MAX_REDIRECTS} redirects")


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower() if e.errno == errno.ECONNREFUSED else e.strerror
    return type(e).__name__ + (f": {e}" if str(e) else "")


def _mb(n: int | None) -> str:
    return "? MB" if n is None else f"{n / 1e6:.1f} MB"


def _open_cache(path: Path, mode: str):
    try:
        return open(path, mode)  # noqa: SIM115 -- the caller's with-block closes it
    except OSError as e:
        raise _cache_error(path.parent, e) from None


def _cache_error(where: Path, e: OSError) -> CacheError:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return CacheError(f"kdebug's cache {where} is full ({e.strerror})",
                          hint="free space there, or point KDEBUG_CACHE at a larger disk")
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return CacheError(f"kdebug's cache {where} is not writable ({e.strerror})",
                          hint="point KDEBUG_CACHE at a writable directory")
    return CacheError(f"kdebug's cache {where}: {e.strerror or e}")
