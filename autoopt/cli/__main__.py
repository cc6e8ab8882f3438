from autoopt.cli import app

app()
