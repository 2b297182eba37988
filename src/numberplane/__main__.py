from numberplane.cli import app

app(prog_name="numberplane")
