"""Celery over Redis: the one module that imports celery, kombu or redis.

Each dump is one task on the queue of its kernel release (``kdebug.<release>``
from its VMCOREINFO; ``kdebug.any`` when the dump does not say), so a worker
subscribes to the releases whose debug info it has and keeps that cache warm.
Tasks are acknowledged late and rejected back to the queue when their pool
process dies, and each worker process holds one task at a time (prefetch 1):
a worker killed mid-dump loses no dump. A whole worker that vanishes (killed,
machine gone) leaves its task unacknowledged in Redis, which hands it to
another worker after the visibility timeout (``--redeliver-after``).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from celery import Celery
from celery.app import trace as celery_trace
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from kdebug.errors import UsageError
from kdebug.fleet.work import NO_WORKER, analyse_site, entry_of, failed, options_to_dict
from kdebug.postmortem.triage import TriageOptions
from kdebug.report.triage import TriageEntry, TriageError
from kdebug.vmcore.layouts import DumpSite

TASK = "kdebug.fleet.analyse"
ANY_QUEUE = "kdebug.any"
SCHEMES = ("redis://", "rediss://", "redis+socket://")
#: Seconds the client gives the broker to answer before saying so.
CONNECT_TIMEOUT = 3.0
#: The client's read timeout (a worker's blocking reads must not have one).
SOCKET_TIMEOUT = 5.0
#: A hard kill follows the soft time limit after this much grace (crash is cancelled on the soft one).
HARD_GRACE = 30.0
#: Deliveries of one dump before it is given up (a worker or its pool process died each time).
MAX_ATTEMPTS = 3
#: How often the client asks whether any worker is left, and after how many silent asks it gives up.
PING_EVERY, PING_MISSES = 20.0, 3
#: How long the client waits for a broker that went away mid-run (restarted) to come back.
BROKER_GRACE = 60.0
#: How often the client asks the broker whether it still holds each pending dump's task: a broker
#: restarted without its data has lost them, and nothing would ever answer for them.
HELD_EVERY = 5.0


def queue_for(release: str | None) -> str:
    return f"kdebug.{release}" if release else ANY_QUEUE


def make_app(broker: str, *, redeliver_after: float = 3600.0, client: bool = True) -> Celery:
    if not broker.startswith(SCHEMES):
        raise UsageError(f"--broker {broker}: not a Redis URL", hint="redis://HOST:6379/0")
    app = Celery("kdebug", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_track_started=True,
        # Results are read once by the client and then forgotten; unread ones expire.
        result_expires=7 * 86400,
        broker_connection_retry=False, broker_connection_max_retries=1,
        broker_connection_timeout=CONNECT_TIMEOUT,
        broker_transport_options={"visibility_timeout": redeliver_after,
                                  "socket_connect_timeout": CONNECT_TIMEOUT},
        redis_socket_connect_timeout=CONNECT_TIMEOUT,
        result_backend_transport_options={"retry_policy": {"timeout": CONNECT_TIMEOUT}},
        worker_hijack_root_logger=True,
        worker_redirect_stdouts=False,
    )
    if client:  # a server that accepts but never answers is an error too, not a hang
        app.conf.broker_transport_options["socket_timeout"] = SOCKET_TIMEOUT
        app.conf.redis_socket_timeout = SOCKET_TIMEOUT
    app.task(name=TASK, bind=True, acks_late=True, reject_on_worker_lost=True)(_analyse)
    return app


def _analyse(task, site: dict, options: dict) -> dict:
    """The task: runs in a worker's pool process."""
    worker = os.environ.get("KDEBUG_WORKER_NAME") or socket.gethostname()
    t0 = time.monotonic()
    # A dump that kills the process analysing it (a crash in drgn) would come
    # back for ever with reject_on_worker_lost: count the deliveries.
    key = f"kdebug.attempts.{task.request.id}"
    client = task.app.backend.client
    try:
        attempts = client.incr(key)
        client.expire(key, 7 * 86400)
    except RedisError:  # the broker restarting: the count is lost with it, the dump is not
        attempts = 1
    if attempts > MAX_ATTEMPTS:
        return failed(TriageError(f"the process analysing this dump died {attempts - 1} times (killed, or a "
                                  "crash in the analysis); not tried again", "internal"), 0.0, worker)
    try:
        return analyse_site(site, options, worker)
    except SoftTimeLimitExceeded:
        limit = options.get("timeout")
        return failed(TriageError(f"timed out after {limit:g} s" if limit else "timed out", "timeout"),
                      time.monotonic() - t0, worker)
    except Exception as e:  # a bug in kdebug: this dump's entry says so, the rest go on
        return failed(TriageError(f"internal error: {type(e).__name__}: {e}", "internal"),
                      time.monotonic() - t0, worker)


def check_broker(app: Celery) -> None:
    """One line within seconds when the broker cannot be reached, not a hang."""
    url = app.conf.broker_url
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0.5,
                                   timeout=CONNECT_TIMEOUT)
            conn.default_channel.client.ping()
    except (OperationalError, OSError) as e:
        raise UsageError(f"cannot reach the broker {_redact(url)}: {_first_line(e)}",
                         hint="is redis-server running there, and is the URL right?") from None
    except Exception as e:  # redis-py's own errors (auth, protocol) are not OSErrors
        raise UsageError(f"cannot use the broker {_redact(url)}: {_first_line(e)}") from None


#: How long the second ask for the workers' queues waits (the first: 1 s).
RECHECK_TIMEOUT = 4.0


def worker_queues(app: Celery, timeout: float = 1.0) -> dict[str, set[str]]:
    """Live workers and the queues each consumes."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {name: {q["name"] for q in qs} for name, qs in replies.items()}


@dataclass
class _Pending:
    site: DumpSite
    result: object  # celery AsyncResult
    sent: float
    queue: str = ANY_QUEUE  # where it was sent (queue_for its release)


@dataclass
class BrokerQueue:
    """The client's side of the queue (kdebug.fleet.run.DumpQueue)."""

    app: Celery

    def analyse(self, sites: list[tuple[DumpSite, str | None]], *, options: TriageOptions, timeout: float,
                progress: Callable[[TriageEntry, str], None] | None = None) -> list[tuple[TriageEntry, str]]:
        return analyse(self.app, sites, options=options, timeout=timeout, progress=progress)


def connect(broker: str) -> BrokerQueue:
    """The client's queue, its broker answering (UsageError within seconds if not)."""
    app = make_app(broker)
    check_broker(app)
    return BrokerQueue(app)


def analyse(app: Celery, sites: list[tuple[DumpSite, str | None]], *, options: TriageOptions, timeout: float,
            progress: Callable[[TriageEntry, str], None] | None = None) -> list[tuple[TriageEntry, str]]:
    """Each (site, release) as a task on its release's queue; (entry, worker
    name) per site, in the order given, each also handed to ``progress`` as it
    arrives. A dump whose release no worker takes is listed as failed rather
    than left waiting."""
    broker = app.conf.broker_url
    subscribed = set().union(*worker_queues(app).values())
    if not {queue_for(r) for _, r in sites} <= subscribed:
        # A worker busy or loaded may answer after the first second: ask once
        # more, longer, before a release is said to have no worker.
        subscribed |= set().union(*worker_queues(app, timeout=RECHECK_TIMEOUT).values())
    if not subscribed:
        raise UsageError(f"no kdebug worker is listening on {_redact(broker)}",
                         hint=f"start one: kdebug worker --broker {_redact(broker)}")
    done: dict[int, tuple[TriageEntry, str]] = {}
    pending: dict[int, _Pending] = {}
    opts = {**options_to_dict(options), "timeout": timeout}
    try:
        for i, (site, release) in enumerate(sites):
            q = queue_for(release)
            if q not in subscribed:
                entry = TriageEntry(site, 0.0, error=TriageError(
                    f"no worker takes release {release or '(unknown)'}: none subscribes to queue {q}",
                    NO_WORKER, hint=f"start kdebug worker --release {release} where its debug info is"
                    if release else "start a worker with the default queues"))
                done[i] = (entry, "")
                if progress:
                    progress(entry, "")
                continue
            res = app.send_task(TASK, args=[site.to_dict(), opts], queue=q, soft_time_limit=timeout,
                                time_limit=timeout + HARD_GRACE, retry=False)
            pending[i] = _Pending(site, res, time.monotonic(), q)
        _collect(app, pending, done, timeout, progress)
    except (OperationalError, OSError, RedisError) as e:
        raise UsageError(f"lost the broker {_redact(broker)} for {BROKER_GRACE:g} s: {_first_line(e)}",
                         hint="queued dumps stay queued; run the same triage again once it is back") from None
    except BaseException:
        if pending:  # Ctrl-C: the queued dumps are not analysed for nobody
            try:
                app.control.revoke([p.result.id for p in pending.values()])
            except Exception:
                pass
        raise
    return [done[i] for i in range(len(sites))]


def _collect(app: Celery, pending: dict[int, _Pending], done: dict[int, tuple[TriageEntry, str]],
             timeout: float, progress) -> None:
    last_ping = last_held = time.monotonic()
    misses = 0
    away: float | None = None  # when the broker stopped answering
    unheld: set[str] = set()  # tasks the broker held nowhere at the last look

    def give_up(indexes, why: str) -> None:
        for i in list(indexes):
            p = pending.pop(i)
            done[i] = (TriageEntry(p.site, time.monotonic() - p.sent, error=TriageError(why, "fleet")), "")
            if progress:
                progress(*done[i])

    while pending:
        try:
            finished = [i for i, p in pending.items() if p.result.ready()]
            for i in finished:
                done[i] = _entry(pending[i], timeout)
                p = pending.pop(i)
                try:
                    p.result.forget()
                except (OperationalError, OSError, RedisError):
                    pass  # an unread result expires (result_expires)
                if progress:
                    progress(*done[i])
            if pending and time.monotonic() - last_held > HELD_EVERY:
                last_held = time.monotonic()
                # Missing at two looks in a row: a worker's take of a task moves
                # it from the queue to its unacked record, not quite at once.
                now_unheld = {p.result.id for p in pending.values()} - _held(app, pending.values())
                give_up([i for i, p in pending.items() if p.result.id in now_unheld & unheld],
                        "the broker lost this dump's task (restarted without its data?); run the same triage again")
                unheld = now_unheld
            if pending and time.monotonic() - last_ping > PING_EVERY:
                last_ping = time.monotonic()
                misses = 0 if app.control.ping(timeout=2.0) else misses + 1
                if misses >= PING_MISSES:
                    give_up(list(pending), "no kdebug worker answers on the broker any more; the dump stays queued")
            away = None
        except (OperationalError, OSError, RedisError):
            # A restart: the workers ride it out, and so does the client, for a while.
            away = away or time.monotonic()
            if time.monotonic() - away > BROKER_GRACE:
                raise
            time.sleep(1.0)
            continue
        if pending and not finished:
            time.sleep(0.5)


#: kombu's Redis transport: where a delivered, not yet acknowledged message waits.
UNACKED_KEY = "unacked"


def _held(app: Celery, pending) -> set[str]:
    """The ids of ``pending`` tasks the broker still holds somewhere: queued
    (the queue's lists, one per priority), delivered and not acknowledged,
    or with a state of their own (started, or done)."""
    client = app.backend.client  # the broker's Redis: make_app gives both one URL
    ids = {p.result.id for p in pending}
    held = {i for i in ids if client.exists(app.backend.get_key_for_task(i))}
    texts = list(client.hvals(UNACKED_KEY))
    for q in {p.queue for p in pending}:
        for key in client.scan_iter(match=f"{q}*"):
            if client.type(key) in (b"list", "list"):
                texts += client.lrange(key, 0, -1)
    blob = b"\n".join(t if isinstance(t, bytes) else str(t).encode() for t in texts)
    return held | {i for i in ids - held if i.encode() in blob}


def _entry(p: _Pending, timeout: float) -> tuple[TriageEntry, str]:
    res = p.result
    if res.successful():
        value = res.result
        return entry_of(p.site, value), value.get("worker", "")
    exc = res.result
    secs = time.monotonic() - p.sent
    if isinstance(exc, TimeLimitExceeded):
        return TriageEntry(p.site, secs, error=TriageError(f"timed out after {timeout:g} s", "timeout")), ""
    if isinstance(exc, (OperationalError, OSError, RedisError)):
        return TriageEntry(p.site, secs, error=TriageError(
            f"the worker lost the broker: {_first_line(exc)}; run the same triage again", "fleet")), ""
    return TriageEntry(p.site, secs, error=TriageError(
        f"the worker failed: {type(exc).__name__}: {_first_line(exc)}", "internal")), ""


def run_worker(broker: str, *, concurrency: int, queues: list[str], name: str | None,
               max_memory_mb: int, redeliver_after: float, loglevel: str = "INFO") -> None:
    """Celery's own worker (prefork pool), in this process until it is stopped."""
    check_broker(make_app(broker))  # with the client's timeouts: a dead broker is one line, not a hang
    app = make_app(broker, redeliver_after=redeliver_after, client=False)
    # kombu sweeps for abandoned tasks every interval x throttle seconds (100 s by default):
    # sweep often enough that --redeliver-after is what a vanished worker's dump waits.
    app.conf.broker_transport_options.update(unacked_restore_interval=min(10.0, redeliver_after / 4),
                                             unacked_restore_throttle=1)
    # A worker rides out broker restarts; only the first connection must work at once.
    app.conf.update(broker_connection_retry=True, broker_connection_max_retries=None,
                    broker_connection_retry_on_startup=False)
    node = (name or f"kdebug-{os.getpid()}@%h").replace("%h", socket.gethostname())
    os.environ["KDEBUG_WORKER_NAME"] = node  # the pool processes fork from here
    # Celery logs each task's return value: a whole report per dump. Its name and time are enough.
    celery_trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"
    app.worker_main(["worker", f"--hostname={node}", f"--concurrency={concurrency}", "--pool=prefork",
                     f"--queues={','.join(queues)}", f"--max-memory-per-child={max_memory_mb * 1024}",
                     "--prefetch-multiplier=1", "--without-gossip", "--without-mingle",
                     f"--loglevel={loglevel}"])


def _first_line(e: BaseException) -> str:
    s = str(e).strip() or type(e).__name__
    return s.splitlines()[0]


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, _ = head.partition("//")
    return f"{scheme}//***@{tail}"
