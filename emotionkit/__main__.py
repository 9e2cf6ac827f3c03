"""`python -m emotionkit` is the same as the `emotionkit` command."""

from emotionkit.cli import main

main()
