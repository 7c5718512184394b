"""`python -m kerasseg.cli ...`: the `kerasseg` program."""

from kerasseg.cli import console_main

console_main()
