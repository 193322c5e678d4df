"""CPU accounting from /proc: how much CPU each process group (client, Envoy, a service, Postgres, the
FastAPI peer) spent during a measurement, so that a throughput figure can be split into where the time
went. On a 2-core machine the sum over groups is what limits throughput."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the command: state(0) ppid(1) ... utime(11) stime(12)
    return (int(fields[11]) + int(fields[12])) / _TICK


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def tree_pids(root: int) -> list[int]:
    tree, out, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, ()))
    return out


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, summed over cores."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already inside user
    return (total - idle) / _TICK, total / _TICK


@dataclass
class Snapshot:
    wall: float
    groups: dict[str, dict[int, float]]  # group -> pid -> CPU seconds so far
    busy: float
    total: float


class CpuMeter:
    """Snapshots CPU seconds per named group. A group is a list of root pids; each root counts with all
    its descendants (Postgres backends are children of the postmaster; uvicorn may fork).

    Deltas are taken per pid: a process that starts during the interval counts in full, one that exits
    during it drops out (its last moments are lost, its earlier lifetime is not subtracted). Pools that
    close idle or overflow connections would otherwise make Postgres look as if it used negative CPU."""

    def __init__(self, groups: dict[str, list[int]], *, include_self: bool = True) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.include_self = include_self

    def snapshot(self) -> Snapshot:
        tree = _children()
        values: dict[str, dict[int, float]] = {}
        for name, roots in self.groups.items():
            seen: set[int] = set()
            todo = list(roots)
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                todo.extend(tree.get(pid, ()))
            values[name] = {pid: process_seconds(pid) for pid in seen}
        if self.include_self:
            values["client"] = {os.getpid(): time.process_time()}
        busy, total = machine_busy_seconds()
        return Snapshot(time.perf_counter(), values, busy, total)

    @staticmethod
    def delta(before: Snapshot, after: Snapshot) -> dict[str, float]:
        """CPU seconds per group between two snapshots, plus `machine` (all cores, every process) and
        `other` (machine minus the named groups: other people's work on the box, the kernel)."""
        out = {}
        for name, pids in after.groups.items():
            earlier = before.groups.get(name, {})
            out[name] = sum(max(0.0, seconds - earlier.get(pid, 0.0)) for pid, seconds in pids.items())
        machine = after.busy - before.busy
        out["other"] = max(0.0, machine - sum(out.values()))
        out["machine"] = machine
        out["wall"] = after.wall - before.wall
        return out
