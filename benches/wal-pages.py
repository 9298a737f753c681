#!/usr/bin/env python3
"""Counts the pages each commit writes to a SQLite write-ahead log, by table and index.

    benches/wal-pages.py <database> [commits]

Reads the frames of `<database>-wal` (every frame header names its page; a commit's last frame
carries the database size), keeps the last `commits` commits (default 500), and names each
page's table or index with the `dbstat` virtual table of `<database>` opened read-only. Take a
copy of both files while a benchmark writes them, e.g. during `persisted 300000 64 1`:

    d=$(ls -d /tmp/taskflow-bench-persisted-* | tail -1)
    cp "$d/tasks.db" /tmp/t.db; cp "$d/tasks.db-wal" /tmp/t.db-wal
    benches/wal-pages.py /tmp/t.db

A copy taken mid-write may end in a torn frame; frames are read only while their salts match
the log's header, so such a tail is left out.
"""

import collections
import sqlite3
import struct
import sys

WAL_HEADER = struct.Struct(">IIIIIIII")
# Page number, database size (set on a commit's last frame), two salts, two checksums.
FRAME_HEADER = struct.Struct(">IIIIII")


def commits(wal_path):
    """The page numbers of each whole commit in the log, oldest first."""
    with open(wal_path, "rb") as wal:
        header = wal.read(WAL_HEADER.size)
        if len(header) < WAL_HEADER.size:
            sys.exit(f"{wal_path}: too short for a write-ahead log")
        _magic, _version, page_size, _checkpoint, salt1, salt2, _c1, _c2 = WAL_HEADER.unpack(header)
        done, pages = [], []
        while True:
            frame = wal.read(FRAME_HEADER.size)
            if len(frame) < FRAME_HEADER.size:
                break
            page, db_size, frame_salt1, frame_salt2, _c1, _c2 = FRAME_HEADER.unpack(frame)
            if (frame_salt1, frame_salt2) != (salt1, salt2):
                break
            if len(wal.read(page_size)) < page_size:
                break
            pages.append(page)
            if db_size:
                done.append(pages)
                pages = []
        return done


def owners(db_path):
    """Each page number's table or index."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT pageno, name FROM dbstat"))
    finally:
        db.close()


def main():
    if len(sys.argv) not in (2, 3) or (len(sys.argv) == 3 and not sys.argv[2].isdigit()):
        sys.exit(__doc__)
    db_path = sys.argv[1]
    last = int(sys.argv[2]) if len(sys.argv) == 3 else 500
    if last == 0:
        sys.exit("commits: at least 1")
    try:
        every = commits(db_path + "-wal")
        names = owners(db_path)
    except (OSError, sqlite3.Error) as error:
        sys.exit(f"{db_path}: {error}")
    if not every:
        sys.exit(f"{db_path}-wal holds no whole commit")
    kept = every[-last:]
    counts = collections.Counter(names.get(page, "?") for commit in kept for page in commit)
    frames = sum(map(len, every))
    print(f"{len(every)} commits, {frames} frames, {frames / len(every):.1f} pages per commit")
    print(f"pages per commit over the last {len(kept)}:")
    for name, count in counts.most_common():
        print(f"  {name:32} {count / len(kept):6.2f}")


if __name__ == "__main__":
    main()
