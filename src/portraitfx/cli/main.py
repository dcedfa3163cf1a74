"""Entry point of the ``portraitfx`` command.

User errors (every :class:`~portraitfx.errors.PortraitFxError`) print one line,
``error: ...``, and exit with the error's code; no traceback. ``PORTRAITFX_DEBUG=1``
shows the traceback too; ``PORTRAITFX_NATIVE_LOGS=1`` lets MediaPipe's own log
lines through.
"""

from __future__ import annotations

import os
import sys

import typer

from portraitfx._version import __version__
from portraitfx.cli import analyze as analyze_cmd
from portraitfx.cli import batch as batch_cmd
from portraitfx.cli import convert as convert_cmd
from portraitfx.cli import demo as demo_cmd
from portraitfx.cli import hair as hair_cmd
from portraitfx.cli import live as live_cmd
from portraitfx.cli import portrait as portrait_cmd
from portraitfx.cli import serve as serve_cmd
from portraitfx.cli import style as style_cmd
from portraitfx.cli import stylegan as stylegan_cmd
from portraitfx.cli import stylize as stylize_cmd
from portraitfx.cli import swap as swap_cmd
from portraitfx.cli import toon as toon_cmd
from portraitfx.cli import train as train_cmd
from portraitfx.cli import verify as verify_cmd
from portraitfx.cli import web as web_cmd
from portraitfx.cli._stderr import filtered_native_stderr
from portraitfx.errors import PortraitFxError

app = typer.Typer(
    name="portraitfx",
    help="AI portrait effects: face analysis, stylization, hair, portrait studio and face swap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("analyze")(analyze_cmd.analyze)
app.command("stylize")(stylize_cmd.stylize)
app.command("swap", cls=swap_cmd.SwapCommand)(swap_cmd.swap)  # and `swap prepare`
app.command("verify")(verify_cmd.verify)
app.command("batch")(batch_cmd.batch)
app.command("live")(live_cmd.live)
app.add_typer(style_cmd.app, name="style")
app.add_typer(stylegan_cmd.app, name="stylegan")
app.add_typer(convert_cmd.app, name="convert")
app.command("toon")(toon_cmd.toon)
app.command("portrait")(portrait_cmd.portrait)
app.add_typer(hair_cmd.app, name="hair")
app.add_typer(toon_cmd.student_app, name="student")
app.add_typer(toon_cmd.export_app, name="export")
app.add_typer(toon_cmd.eval_app, name="eval")
app.add_typer(toon_cmd.ugatit_app, name="ugatit")
train_cmd.app.command("hairnet")(hair_cmd.train_hairnet)
toon_cmd.export_app.command("hairnet")(hair_cmd.export_hairnet_cmd)
app.add_typer(train_cmd.app, name="train")
app.command("demo")(demo_cmd.demo)
app.command("serve")(serve_cmd.serve)
app.command("web")(web_cmd.web)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"portraitfx {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", help="Show the version and exit.", callback=_version, is_eager=True
    ),
) -> None:
    """AI portrait effects on images and videos, on a CPU or a GPU."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status (also used by the console script)."""
    from portraitfx._tuning import tune_process

    tune_process()  # allocator and BLAS threads for long jobs (see portraitfx._tuning)
    if os.environ.get("PORTRAITFX_NATIVE_LOGS") or sys.stderr is not sys.__stderr__:
        return _main(argv)  # asked for, or stderr is already captured (tests, embedding)
    with filtered_native_stderr():
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    try:
        rv = app(args=argv, prog_name="portraitfx", standalone_mode=False)
    except PortraitFxError as err:
        if os.environ.get("PORTRAITFX_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # usage errors: bad option, missing argument, ...
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(getattr(exc, "exit_code", 2))
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
