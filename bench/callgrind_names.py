#!/usr/bin/env python3
"""Names the app library's functions in a worker's callgrind dump.

A worker loads its app through /proc/self/fd/N (a sealed in-memory copy, see
src/supervisor/artifact.rs), which valgrind cannot read symbols from: the app's functions come
out as bare addresses (`0x00000000054a3b20`), one per basic block entered from elsewhere. This
rewrites each such name to the app library's symbol that contains the address, using the
worker's /proc/PID/maps (captured while it ran) for the load address and the real file for the
symbol table (`nm`). Blocks of one function get one name again, so `callgrind_annotate`'s self
costs add up per function (inclusive costs of those functions stay meaningless: callgrind counted
jumps between their blocks as calls).

It writes DUMP.named and prints the TOP (40) functions by self cost, divided by CALLS.

Usage: callgrind_names.py DUMP MAPS LIBRARY CALLS [TOP]
"""
import bisect
import re
import subprocess
import sys


def load_base(maps_path):
    """The app library's load address: its memfd mapping at file offset 0."""
    for line in open(maps_path):
        fields = line.split()
        if len(fields) >= 6 and fields[5].startswith("/memfd:") and int(fields[2], 16) == 0:
            return int(fields[0].split("-")[0], 16)
    sys.exit("callgrind_names.py: no /memfd: mapping at offset 0 in " + maps_path)


def symbols(library):
    """(start, end, name) of the library's functions, sorted by start."""
    out = subprocess.run(
        ["nm", "--defined-only", "--demangle", "--print-size", "--numeric-sort", library],
        check=True, capture_output=True, text=True).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[2] in "tTwW":
            start, size = int(parts[0], 16), int(parts[1], 16)
            table.append((start, start + max(size, 1), parts[3]))
    return table


def self_costs(lines):
    """Self cost per function name (the object's name before it) from a callgrind dump."""
    names, costs = {}, {}
    current, after_calls = None, False
    define = re.compile(r"^(\(\d+\))(?: (.*))?$")

    def resolve(kind, value):
        m = define.match(value)
        if not m:
            return value
        if m.group(2) is not None:
            names[(kind, m.group(1))] = m.group(2)
        return names.get((kind, m.group(1)), value)

    obj = ""
    for line in lines:
        if line.startswith("ob="):
            obj = resolve("ob", line[3:].rstrip("\n"))
        elif line.startswith("fn="):
            current = resolve("fn", line[3:].rstrip("\n"))
            if current.startswith("0x"):
                current = f"{current} [{obj}]"
        elif line.startswith("cfn="):
            resolve("fn", line[4:].rstrip("\n"))
        elif line.startswith("cob="):
            resolve("ob", line[4:].rstrip("\n"))
        elif line.startswith(("fl=", "fi=", "fe=", "cfi=", "cfl=")):
            kind = "fl"
            resolve(kind, line.split("=", 1)[1].rstrip("\n"))
        elif line.startswith("calls="):
            after_calls = True
        elif line[:1] and (line[:1].isdigit() or line[:1] in "+-*"):
            if after_calls:
                after_calls = False  # the call's inclusive cost, not this function's
                continue
            fields = line.split()
            if current is not None and len(fields) >= 2:
                costs[current] = costs.get(current, 0) + int(fields[1])
    return costs


def main():
    dump, maps, library, calls = sys.argv[1:5]
    top = int(sys.argv[5]) if len(sys.argv) > 5 else 40
    calls = int(calls)
    base = load_base(maps)
    table = symbols(library)
    starts = [t[0] for t in table]

    def name_of(addr):
        at = bisect.bisect_right(starts, addr - base) - 1
        if at >= 0 and table[at][0] <= addr - base < table[at][1]:
            return "app: " + table[at][2]
        return None

    # `fn=(id) name` defines an id the first time; later lines give the id alone.
    line_re = re.compile(r"^(c?fn=)(\(\d+\))( 0x([0-9a-f]+))?$")
    named = []
    for line in open(dump):
        m = line_re.match(line.rstrip("\n"))
        if m and m.group(3):
            name = name_of(int(m.group(4), 16))
            if name:
                line = f"{m.group(1)}{m.group(2)} {name}\n"
        named.append(line)
    with open(dump + ".named", "w") as out:
        out.writelines(named)
    costs = self_costs(named)
    total = sum(costs.values())
    app = sum(c for n, c in costs.items() if n.startswith("app: "))
    print(f"{total / calls:,.0f} instructions per call, {app / calls:,.0f} of them in the app library")
    for name, cost in sorted(costs.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{cost / calls:8,.0f}  {name[:160]}")


if __name__ == "__main__":
    main()
