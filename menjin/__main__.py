from menjin.cli import main

main()
