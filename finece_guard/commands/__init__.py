"""The CLI's commands, one module each, registered on the Typer app in :mod:`finece_guard.cli`."""
