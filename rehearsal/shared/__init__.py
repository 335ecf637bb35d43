"""What every room shares, the reference portal included: the province's domain data and a few small tools.

The official units (`wards`), the procedure catalogue (`catalogue`), the
dossier status codes (`status`); how figures are written for people
(`formats`), the one tolerant JSON-lines reader (`jsonl`), loopback and URL
rules (`net`), the heap freezer (`heap`), whether the harness is starved
(`starvation`). Nothing here imports another room.
"""
