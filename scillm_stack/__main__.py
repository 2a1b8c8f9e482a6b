"""`python -m scillm_stack` runs the CLI; `... demo` runs the demo service without loading it."""

import sys

if sys.argv[1:2] == ["demo"]:
    from scillm_stack.demo.main import main as demo_main

    sys.exit(demo_main(sys.argv[2:]))

from scillm_stack.cli import main

main()
