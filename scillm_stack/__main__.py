"""`python -m scillm_stack` runs the CLI."""

from scillm_stack.cli import main

main()
