"""Renderers for exported events. Pure functions of events: no I/O, streamed row by row."""
