"""Records over MI: what gdb_scripts' kdgdb.command.to_mi sends (every scalar
a string, booleans "true"/"false", None left out) comes back as the same
kdebug.model record through kdebug.attach.mi.mi_record."""

from kdebug.attach.mi import mi_record
from kdebug.errors import DebuggerError, GdbCommandError
from kdebug.model import FrameRecord, ModuleRecord, TaskRecord


def test_task_record_round_trip():
    mi = {"pid": "7", "tgid": "7", "ppid": "1", "state": "S", "cpu": "0", "comm": "sh", "address": "18446612682",
          "is_kthread": "false", "on_cpu": "true", "future_field": "x"}
    t = mi_record(TaskRecord, mi)
    assert t == TaskRecord(7, 7, 1, "S", 0, "sh", 18446612682, None, False, True)


def test_lists_and_optional_fields():
    m = mi_record(ModuleRecord, {"name": "virtio", "size": "4096", "refcount": "-1", "address": "1",
                                 "used_by": ["a", "b"], "permanent": "false"})
    assert m.used_by == ["a", "b"] and m.refcount == -1 and m.permanent is False
    t = mi_record(TaskRecord, {"pid": "1", "tgid": "1", "ppid": "0", "state": "S", "cpu": "0", "comm": "init",
                               "address": "16", "rss_kb": "1024"})
    assert t.rss_kb == 1024


def test_frame_record():
    f = mi_record(FrameRecord, {"index": "0", "pc": str(2**64 - 16), "function": "schedule", "offset": "34",
                                "size": "160", "module": "", "file": "kernel/sched/core.c", "line": "6500",
                                "inline": "false"})
    assert f.pc == 2**64 - 16 and f.inline is False and f.size == 160


def test_gdb_errors_are_typed():
    e = GdbCommandError("no task with pid 9", command="-kd-bt 9")
    assert isinstance(e, DebuggerError) and e.gdb_message == "no task with pid 9"
    assert str(e) == "gdb: no task with pid 9"
