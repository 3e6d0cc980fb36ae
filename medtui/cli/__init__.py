"""The ``medtui`` command line: a thin Typer layer over the Python API.

``medtui`` alone opens the app; subcommands run, browse and manage runs. Data goes
to stdout (``--json`` for every listing), messages to stderr. Bad input — unknown
names, malformed files, invalid values — gives one line on stderr and exit code 2,
never a traceback. Importing this module does not import torch.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any, Optional

import typer
from typer.core import TyperGroup

try:  # Typer >= 0.29 vendors click (its Abort lives in typer.exceptions); older releases use click itself
    from typer._click import exceptions as click_exc
    from typer.exceptions import Abort
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc  # type: ignore[no-redef]
    from click.exceptions import Abort  # type: ignore[no-redef]

from medtui.errors import MedtuiError, UsageError


def _one_line(text: str) -> str:
    return " ".join(text.split())


class MedtuiGroup(TyperGroup):
    """Typer's group with medtui's error policy: one line on stderr, exit 2 for bad input."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True, **extra: Any) -> Any:
        """Run the CLI; usage and input errors become one stderr line and exit code 2."""
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_exc.UsageError as e:
            hint = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
            typer.echo(f"medtui: error: {_one_line(e.format_message())}{hint}", err=True)
            code = 2
        except click_exc.ClickException as e:
            typer.echo(f"medtui: error: {_one_line(e.format_message())}", err=True)
            code = e.exit_code
        except UsageError as e:
            typer.echo(f"medtui: error: {_one_line(str(e))}", err=True)
            code = 2
        except MedtuiError as e:
            typer.echo(f"medtui: error: {_one_line(str(e))}", err=True)
            code = 1
        except sqlite3.DatabaseError as e:  # a store damaged past its header: say so, never a traceback
            typer.echo(f"medtui: error: the store cannot be read ({_one_line(str(e))})", err=True)
            code = 2
        except Abort:
            typer.echo("medtui: aborted", err=True)
            code = 130
        else:
            code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    cls=MedtuiGroup,
    name="medtui",
    help="Experiment manager for continual learning of CLIP models on medical imaging.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DB_HELP = "SQLite store (default: $MEDTUI_DB or ./experiments.db)"


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Without a command: open the app on the store."""
    if version:
        from medtui import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        from medtui.cli.common import open_app

        open_app(db)


# the command modules register themselves on `app`
from medtui.cli import browse, jobs, run, study  # noqa: E402,F401


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    return app(args=argv)
