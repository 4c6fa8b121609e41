"""What AUTOINCREMENT and the inbox's two indexes cost an insert, counted in instructions.

    PY=$(python3 -c 'import sys; print(sys.executable)')
    for v in "0 0" "1 0" "0 1" "1 1"; do for n in 20 40; do
      valgrind --tool=callgrind --callgrind-out-file=/tmp/ai.out $PY autoincrement-cost.py $v $n
      callgrind_annotate /tmp/ai.out | grep "PROGRAM TOTALS"
    done; done

Arguments: AUTOINCREMENT (0/1), the indexes (0/1), batches of 100 rows. The difference between
40 and 20 batches, divided by 2,000, is one insert's cost (BENCHMARKS.md, 2026-12-07).
"""
import os
import sqlite3
import sys

auto, idx, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
row = "x" * 460
path = f"/tmp/autoincrement-cost-{auto}{idx}.db"
for suffix in ["", "-wal", "-shm"]:
    if os.path.exists(path + suffix):
        os.remove(path + suffix)
c = sqlite3.connect(path, isolation_level=None)
c.execute("pragma journal_mode=wal")
c.execute("pragma synchronous=off")
c.execute(
    f"create table inbox (id integer primary key {'autoincrement' if auto else ''}, "
    f"call_id text not null {'unique' if idx else ''}, app_key text, params text, detail text, "
    "response text)"
)
if idx:
    c.execute("create index by_app on inbox (app_key, id)")
for b in range(n):
    c.execute("begin")
    c.executemany(
        "insert into inbox (call_id, app_key, params, detail, response) values (?, ?, ?, ?, ?)",
        [(f"{b:08x}{i:08x}", "10000001", row, row[:68], row[:187]) for i in range(100)],
    )
    c.execute("commit")
