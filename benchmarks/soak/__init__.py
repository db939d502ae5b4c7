"""The soak: a clinic's day, three rooms at once, every fault of the simulator's catalogue.

``make soak`` (``python -m benchmarks.soak``) runs a seeded series of at least 300 simulated
sessions back to back on the accelerated clock, in one long-lived process per station and three
stations at once, with faults from the whole catalogue at random times (each at least 20 times,
some combined: a contact loss during a reconnect, a fault while paused, a restart during the
ramp-down of a STOP). For every session it checks the outcome against the expectation table
(:data:`benchmarks.soak.plan.EXPECTED`), the device seen inactive at the end, the record
verified and nothing resumed after a lost link or a restart unless the practitioner asked; across
the run, per station, resident memory, threads, open descriptors and Python objects flat after a
warm-up and no queue growing. It prints the fault x outcome matrix and the figures and exits 1 on
any breach. ``--short`` is the variant that ``make test`` runs (tests/soak/test_soak_short.py).

Modules: :mod:`~benchmarks.soak.plan` (protocols, stories, the expectation table),
:mod:`~benchmarks.soak.station` (a station process and its practitioner),
:mod:`~benchmarks.soak.simproc` (the station's ``epm sim``), :mod:`~benchmarks.soak.checks`
(the verdicts, pure), :mod:`~benchmarks.soak.runner` (the run and its report).
"""
