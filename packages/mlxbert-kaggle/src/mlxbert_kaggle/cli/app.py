"""``mlxbert``: the typer application and its sub-command groups."""

from __future__ import annotations

import typer

from . import cmd_demo, cmd_glue, cmd_kaggle, cmd_serve, cmd_tools, cmd_train

app = typer.Typer(
    name="mlxbert",
    help="BERT-family encoders on MLX: fine-tune on tables and GLUE, predict, submit to Kaggle.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

app.command("demo")(cmd_demo.demo)
app.command("train")(cmd_train.train)
app.command("predict")(cmd_train.predict)
app.add_typer(cmd_kaggle.app, name="kaggle")
app.add_typer(cmd_glue.app, name="glue")
app.command("embed")(cmd_tools.embed)
app.command("classify")(cmd_tools.classify)
app.command("info")(cmd_tools.info)
app.command("serve")(cmd_serve.serve)


def main() -> None:
    """Console-script entry point."""
    app()
