"""Trains a SimpleDDPM pipeline: `accelerate launch scripts/train.py [--dataset_name ... | --train_data_dir ...]`.

The program lives in the package (`diffusers_simple_ddpm.training`); this file is the entry that `accelerate launch`
runs from a clone, as diffusers' examples are run. `simple-ddpm train` runs the same program from an installed package.
"""

from diffusers_simple_ddpm.training_args import build_parser

if __name__ == "__main__":
    # The light parser answers `--help` and misspelt flags before the training program's heavy imports.
    build_parser().parse_args()
    from diffusers_simple_ddpm.training import main

    main()
