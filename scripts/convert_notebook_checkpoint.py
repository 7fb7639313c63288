"""Converts a checkpoint of the teaching notebook's `SimpleUNet` into a diffusers pipeline folder.

Usage:
    python scripts/convert_notebook_checkpoint.py --checkpoint unet.pt --output_dir simple-ddpm-notebook
"""

import argparse

from diffusers_simple_ddpm.convert_notebook import convert_notebook_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", required=True, help="The notebook state_dict, saved with torch.save(unet.state_dict(), path)."
    )
    parser.add_argument("--output_dir", required=True, help="Where to write the pipeline (save_pretrained layout).")
    parser.add_argument(
        "--sample_size", type=int, default=32, help="The resolution the network was trained at (a multiple of 4)."
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    convert_notebook_checkpoint(args.checkpoint, args.output_dir, sample_size=args.sample_size)
    print(f"Saved the pipeline to {args.output_dir}; load it with SimpleDDPMPipeline.from_pretrained({args.output_dir!r}).")


if __name__ == "__main__":
    main()
