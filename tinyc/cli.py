"""The ``tinyc`` command line: thin click commands over the compiler's modules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from tinyc import __version__
from tinyc.errors import TinycError


def _emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyc")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
def cli(debug: bool) -> None:
    """tinyc: compile TinyML models (ONNX, PyTorch, TFLite) into firmware for microcontrollers."""


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(model: str, as_json: bool) -> None:
    """Per-node table of MODEL: op, shapes, dtype, parameters, MACs; then totals."""
    from tinyc.frontend import load_model
    from tinyc.inspect_model import format_inspection, inspect_graph

    info = inspect_graph(load_model(model))
    if as_json:
        _emit_json(info)
    else:
        click.echo(format_inspection(info))


@cli.command()
@click.argument("model")
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    required=True,
    metavar="X.npy",
    help="One .npy per model input, in the model's own layout and dtype.",
)
@click.option(
    "--output-dir",
    "-o",
    required=True,
    type=click.Path(path_type=Path),
    help="Where output_0.npy ... are written.",
)
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@click.option("--json", "as_json", is_flag=True, help="List the outputs as JSON.")
def infer(
    model: str, inputs: tuple[str, ...], output_dir: Path, force: bool, as_json: bool
) -> None:
    """Run MODEL on the reference interpreter and write its outputs."""
    from tinyc.frontend import load_model
    from tinyc.fsutil import atomic_dir
    from tinyc.interpreter import run
    from tinyc.modelio import load_inputs, to_external

    g = load_model(model)
    results = run(g, load_inputs(g, list(inputs)))
    listing = []
    with atomic_dir(output_dir, force) as tmp:
        for i, name in enumerate(g.outputs):
            y = to_external(g, name, results[name])
            np.save(tmp / f"output_{i}.npy", y)
            listing.append(
                {
                    "file": str(output_dir / f"output_{i}.npy"),
                    "name": name,
                    "shape": list(y.shape),
                    "dtype": str(y.dtype),
                }
            )
    if as_json:
        _emit_json({"outputs": listing})
    else:
        for o in listing:
            click.echo(f"{o['file']}: {o['name']} {o['dtype']}[{','.join(map(str, o['shape']))}]")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        rc = cli.main(args=args, prog_name="tinyc", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("tinyc: error: aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"tinyc: error: {e.format_message()}", err=True)
        return 2
    except TinycError as e:
        if debug:
            raise
        click.echo(f"tinyc: error: {' '.join(str(e).split())}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("tinyc: error: interrupted", err=True)
        return 130
    except Exception as e:  # a bug in tinyc: still one line, the traceback behind --debug
        if debug:
            raise
        click.echo(
            f"tinyc: error: internal error ({type(e).__name__}: {e}); rerun with --debug "
            "and report it",
            err=True,
        )
        return 3
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
