"""chronos-async benchmarks: every figure is a ratio to a raw floor from the same run.

Run ``python -m benchmarks`` (or ``nox -s bench``); ``--quick`` is a reduced run of about
three and a half minutes on 2 cores, ``--only create,get_latest`` picks scenarios,
``--out PATH`` moves the JSON (default ``benchmarks/results/latest.json``), ``--seed``
changes generated data, ``--profile DIR`` writes a cProfile of the library's side of each
comparison.

The embedded servers (nx-27017 and SeaweedFS, via ``chronos_async.embedded.LocalStack``)
are started for the run unless ``CHRONOS_TEST_MONGO_URI`` / ``CHRONOS_TEST_S3_*`` name
others. Each scenario works in a fresh database that is dropped afterwards.

The floor (``_floor.py``) does each operation's I/O by hand with pymongo's
``AsyncMongoClient`` and the library's S3 client (obstore by default; ``_floor_blobs.py``),
with the same client settings, the same payload bytes and document shapes, in the best
order and with the fewest round trips. On S3 a second floor does the same through
aioboto3, and rows labelled ``s3 vs boto3`` compare the library with it. Floor and library
run in alternating rounds in one process, so a ratio holds on a noisy machine where an
absolute figure does not. Benchmarks are never part of the pass/fail test suite.

Modules: ``_harness`` (rounds, percentiles, RSS, loop lag), ``_env`` (servers, configs),
``_context`` (run parameters, library/floor pairs), ``_data`` (payloads), ``_floor``,
``_scenarios_write`` (create/update/enrich), ``_scenarios_read`` (get_latest,
get_version, get_as_of), ``_scenarios_bulk`` (list_by_meta, restore_collection, soak),
``_scenarios_loop`` (event-loop blocking), ``_scenarios_fallback`` (the fallback
queue: healthy writes with it on vs off, and the drain rate after an outage),
``_scenarios_counters`` (counting on vs off on the write path, ``get_totals``
latency vs a raw ``find_one``, the totals checked),
``_scenarios_packs`` (group commit into packs vs unbatched writes, PUTs counted), ``_soak``
(the soak's child process), ``_report`` (table and JSON).
"""
