from repropack.cli import main

main()
