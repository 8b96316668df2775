from mpmd.cli.main import main

main()
