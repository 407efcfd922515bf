"""``trailkeeper verify``: prove a store, a server or exported files unaltered.

Imports only what verifying needs: the command starts each time an auditor runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import orjson

from trailkeeper.cli.options import existing_store, resolve_store, store_options
from trailkeeper.errors import UnavailableError
from trailkeeper.integrity.keys import Verifier, parse_verifier_key, read_verifier_key_file
from trailkeeper.integrity.note import NoteError
from trailkeeper.integrity.report import Report
from trailkeeper.integrity.sources import ServerSource, Source, StoreSource
from trailkeeper.integrity.verify import Trust, verify_source
from trailkeeper.integrity.verify_files import verify_directory
from trailkeeper.storage import open_storage


def _trusted_key(text: str) -> Verifier:
    """``--key``: a file holding a verifier key (the ``.pub`` a server writes), or the key."""
    try:
        path = Path(text)
        return read_verifier_key_file(path) if path.is_file() else parse_verifier_key(text)
    except (NoteError, ValueError, OSError) as exc:
        raise click.BadParameter(f"{text!r} is neither a verifier key nor a file holding "
                                 f"one: {exc}", param_hint="--key") from None


def _kept_checkpoint(path: Path) -> str:
    """``--checkpoint``: the JSON of /api/v1/checkpoints/latest, or the signed note."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}",
                                 param_hint="--checkpoint") from None
    if text.lstrip().startswith("{"):
        try:
            note = orjson.loads(text).get("note")
        except (orjson.JSONDecodeError, AttributeError):
            note = None
        if not isinstance(note, str):
            raise click.BadParameter(f"{path} is JSON without a signed 'note'",
                                     param_hint="--checkpoint")
        return note
    return text


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("directory", required=False,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@store_options
@click.option("-H", "--hostname", help="Verify a server: host name or base URL")
@click.option("-P", "--port", type=click.IntRange(1, 65535), help="Server port [8990]")
@click.option("-u", "--user", envvar="TRAILKEEPER_USER", help="User on the server (an auditor)")
@click.option("-p", "--password", envvar="TRAILKEEPER_PASSWORD", help="Password or API token")
@click.option("--key", "keys", multiple=True, metavar="FILE|KEY",
              help="A trusted public key: the server's checkpoint.key.pub, or its text "
                   "(repeatable) [default: $TRAILKEEPER_HOME/integrity/checkpoint.key.pub]")
@click.option("--checkpoint", "checkpoints", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A checkpoint you kept elsewhere (JSON or signed note); catches a log cut "
                   "short and rebuilt (repeatable)")
@click.option("--jobs", type=click.IntRange(1, 64), default=os.cpu_count() or 1,
              show_default=True,
              help="Processes checking a store's events or hashing the files' lines")
@click.option("--allow-uncovered", is_flag=True,
              help="Exit 0 even if the newest events are not under a checkpoint yet")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
def verify(directory: Path | None, home: Path | None, db_url: str | None,
           hostname: str | None, port: int | None, user: str | None, password: str | None,
           keys: tuple[str, ...], checkpoints: tuple[Path, ...], jobs: int,
           allow_uncovered: bool, as_json: bool) -> None:
    """Prove the audit log complete and unaltered since it was recorded.

    Checks every event against the Merkle tree and every checkpoint's signature and root;
    names the first event edited, deleted, inserted or reordered. Exit 0: verified; 1:
    something was altered; 3: nothing altered, but events not yet under a checkpoint.

    \b
      trailkeeper verify                          # this machine's store (--db / --home)
      trailkeeper verify -H audit.example.com -u auditor --key checkpoint.key.pub
      trailkeeper verify ./evidence --key checkpoint.key.pub   # exported files
    """
    home_dir, url = resolve_store(home, db_url)
    verifiers = [_trusted_key(k) for k in keys]
    notes: list[str] = []
    own = None if verifiers else public_key_path(home_dir)
    if own is not None and own.is_file():
        verifiers.append(read_verifier_key_file(own))
        notes.append(f"trusting this machine's signing key ({own})")
    trust_notes = [_kept_checkpoint(p) for p in checkpoints]
    if directory is not None:
        if not verifiers:
            raise click.UsageError("give --key: the public key of the server that signed "
                                   "the checkpoints (its integrity/checkpoint.key.pub)")
        report = verify_directory(directory, Trust(verifiers, trust_notes), jobs=jobs)
    elif hostname is not None or port is not None:
        if user and password is None:
            password = click.prompt(f"Password for {user}", hide_input=True, err=True)
        base = hostname or "localhost"
        base = base if "://" in base else f"http://{base}:{port or 8990}"
        import httpx  # here: 60 ms that verifying a store or files need not pay

        with httpx.Client(base_url=base.rstrip("/"), timeout=120,
                          auth=(user, password or "") if user else None) as client:
            try:
                report = _verify_source(ServerSource(client, base), verifiers, trust_notes,
                                        notes, None, 1)
            except httpx.HTTPError as exc:
                raise UnavailableError(f"cannot reach {base}: {exc}") from None
    else:
        url = existing_store(url)
        storage = open_storage(url)
        try:
            report = _verify_source(StoreSource(storage, url), verifiers, trust_notes, notes,
                                    url, jobs)
        finally:
            storage.close()
    report.notes[:0] = notes
    _show(report, as_json)
    raise SystemExit(report.exit_code(allow_uncovered=allow_uncovered))


def _verify_source(source: Source, verifiers: list[Verifier], kept: list[str],
                   notes: list[str], url: str | None, jobs: int) -> Report:
    if not verifiers:
        listed = source.keys()
        verifiers = [parse_verifier_key(k) for k in listed]
        notes.append("trusting the keys the log itself lists; for independent proof give "
                     "--key (the public key you hold) and --checkpoint (one you kept)")
    return verify_source(source, Trust(verifiers, kept), db_url=url, jobs=jobs)


def _show(report: Report, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode())
        return
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for problem in report.problems:
        where = f" [{problem.where}]" if problem.where else ""
        click.echo(f"{problem.kind.upper()}: {problem.message}{where}")
    if report.problem_count > len(report.problems):
        click.echo(f"... and {report.problem_count - len(report.problems)} more")
    click.echo(report.summary())


def public_key_path(home: Path) -> Path:
    """The ``.pub`` beside the signing key this home's server uses."""
    # Imported here: reading the settings file's schema costs 0.2 s that `verify --key`
    # does not need.
    from trailkeeper.node import checkpoint_key_path
    from trailkeeper.settingsfile import load_file_settings

    private = load_file_settings(home).integrity.key or checkpoint_key_path(home)
    return private.with_name(private.name + ".pub")
