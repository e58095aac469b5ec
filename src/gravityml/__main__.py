from gravityml.cli import main

main()
