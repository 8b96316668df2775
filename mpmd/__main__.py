from mpmd.cli import main

main()
