from dsrctl.cli import main

main()
