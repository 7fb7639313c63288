"""Trains a SimpleDDPM pipeline: `accelerate launch scripts/train.py [--dataset_name ... | --train_data_dir ...]`.

The program lives in the package (`diffusers_simple_ddpm.training`); this file is the entry that `accelerate launch`
runs from a clone, as diffusers' examples are run. `simple-ddpm train` runs the same program from an installed package.
"""

from diffusers_simple_ddpm.training import main

if __name__ == "__main__":
    main()
