"""What the integrity tests share: SQL run on a store behind Trailkeeper's back, as a
tamperer with database access would."""

from __future__ import annotations

import sqlite3

import psycopg


def run_sql(db_url: str, backend: str, statement: str) -> None:
    """Run ``statement`` on the store directly (committed at once)."""
    if backend == "sqlite":
        with sqlite3.connect(db_url.removeprefix("sqlite://")) as con:
            con.execute(statement)
        return
    with psycopg.connect(db_url, autocommit=True) as con:
        con.execute(statement)
