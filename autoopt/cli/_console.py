"""What every command shares: the Typer app, the two consoles, the output formats and
options, the error handling (one line, an exit code) and a table's printing."""

from __future__ import annotations

import functools
import logging
import math
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from autoopt.errors import AutoOptError, ConfigError, StorageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find the fastest deployable version of a trained model within an accuracy budget.",
)
# Not a terminal (a pipe, a file): lines and tables are never folded (rich would otherwise
# fold them at 80 columns), so a recipe or a reason stays one line a program can grep.
_UNFOLDED = 100_000
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else _UNFOLDED)
err = Console(
    stderr=True,
    soft_wrap=not sys.stderr.isatty(),
    width=None if sys.stderr.isatty() else _UNFOLDED,
)
F = TypeVar("F", bound=Callable[..., Any])


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


StorageOpt = Annotated[
    str | None, typer.Option("--storage", help="SQLAlchemy URL of the study database.")
]
StudyOpt = Annotated[str, typer.Option("--study", help="Study name.")]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output format.")]


def guarded(fn: F) -> F:
    """Bad input is one line and exit 2, any other failure one line and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ConfigError, StorageError) as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None
        except AutoOptError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            # A sweep records what was in flight and returns; this is Ctrl-C before that.
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def main(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also print informational log messages (autoopt's and its libraries').",
        ),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def emit(frame: Any, fmt: Format, title: str) -> None:
    if fmt is Format.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt is Format.json:
        sys.stdout.write(frame.to_json(orient="records", indent=1, default_handler=str) + "\n")
    else:
        table = Table(title=escape(title))
        for col in frame.columns:
            table.add_column(escape(str(col)), overflow="fold")
        for _, row in frame.iterrows():
            table.add_row(*(escape(cell(v)) for v in row))
        out.print(table)


def cell(v: Any) -> str:
    """A table cell: missing values (None, NaN: a metric a failed trial never had) blank."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
