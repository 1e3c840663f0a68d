from fashion_lightning.cli import main

main()
