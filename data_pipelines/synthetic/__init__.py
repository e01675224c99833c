"""The default dataset: rendered synthetic humans with exact ground truth (tfds `synthetic_humans`).

    from data_pipelines import synthetic
    path = synthetic.build("tiny", data_dir, num_workers=2)     # parallel, resumable; returns the folder
    synthetic.contact_sheet(data_dir, "test_occluded", "sheet.png")

Modules: `poses` (pose prior: joint limits, families, self-intersection check), `scene` (split styles,
camera, appearance, backgrounds, occluders, blur), `pseudo_depth`, `lbs` (numpy body model),
`render_example` (`render_example.render_example(seed, split, index)`: one example with its ground truth,
and the frame conventions), `builder` (configs, tfds
builder, parallel build), `contact_sheet` (a PNG to look at).
"""
from data_pipelines.synthetic.builder import CONFIGS, SPLITS, SynthConfig, SyntheticHumans, build, dataset_path
from data_pipelines.synthetic.contact_sheet import contact_sheet

__all__ = ["CONFIGS", "SPLITS", "SynthConfig", "SyntheticHumans", "build", "contact_sheet", "dataset_path"]
