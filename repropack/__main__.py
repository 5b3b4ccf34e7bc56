from repropack.console import main

main()
