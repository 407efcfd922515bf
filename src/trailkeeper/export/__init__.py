"""Renderers for exported events. Pure functions of stored rows: no I/O, streamed row by row.

`formats.export` is the entry point; one module per format (``json``, ``ndjson``, ``csv``,
``xml``, ``text``), `documents` reads stored rows, `escaping` keeps each output safe.
"""
