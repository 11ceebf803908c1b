"""``mlxbert``: the typer application and its sub-command groups."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from . import (
    cmd_adversarial,
    cmd_demo,
    cmd_distill,
    cmd_explain,
    cmd_export,
    cmd_glue,
    cmd_kaggle,
    cmd_report,
    cmd_serve,
    cmd_stack,
    cmd_tools,
    cmd_train,
    cmd_tune,
)
from ._common import DEBUG_ENV, GuardedTyper

app = GuardedTyper(
    name="mlxbert",
    help="BERT-family encoders on MLX: fine-tune on tables and GLUE, predict, submit to Kaggle.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of a failure (or MLXBERT_DEBUG=1).")
    ] = False,
) -> None:
    """BERT-family encoders on MLX: fine-tune on tables and GLUE, predict, submit to Kaggle."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


app.command("demo")(cmd_demo.demo)
app.command("train")(cmd_train.train)
app.command("predict")(cmd_train.predict)
app.add_typer(cmd_kaggle.app, name="kaggle")
app.add_typer(cmd_glue.app, name="glue")
app.command("embed")(cmd_tools.embed)
app.command("classify")(cmd_tools.classify)
app.command("info")(cmd_tools.info)
app.command("report")(cmd_report.report)
app.command("explain")(cmd_explain.explain)
app.command("export")(cmd_export.export)
app.command("serve")(cmd_serve.serve)
app.command("tune")(cmd_tune.tune)
app.command("distill")(cmd_distill.distill)
app.command("stack")(cmd_stack.stack)
app.command("adv-validate")(cmd_adversarial.adv_validate)


def main() -> None:
    """Console-script entry point."""
    app()
