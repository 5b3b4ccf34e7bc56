from repropack.cli import console

console()
