"""Config of the engine's test method (`hmrjax.methods.toy`), not a paper method.

Variants: `tiny` (default: 16x16 images, 4 joints, batch 8 — seconds on a laptop) and `small`.
Usage: `hmrjax train --config configs/toy.py:tiny --workdir W --config.total_steps=100`.
"""
from configs import common


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="tiny")
    config = common.base_config()
    config.method = "toy"

    sizes = {"tiny": (16, 8, 8, 64), "small": (64, 32, 64, 1024)}
    if arg.variant not in sizes:
        raise ValueError(f"configs/toy.py: unknown variant {arg.variant!r} (known: {', '.join(sizes)})")
    image_size, width, batch_size, num_examples = sizes[arg.variant]

    config.model = dict(image_size=image_size, width=width, num_joints=4)
    config.data = dict(name="toy", num_examples=num_examples, seed=0)
    config.batch_size = batch_size
    config.total_steps = 100
    config.optim.name = "adam"
    config.optim.lr = 1e-2
    config.log_every = 10
    config.checkpoint.every_steps = 50
    return config
