"""hmrjax: 3D human mesh recovery in JAX/Flax (D-PoSE, probabilistic HMR, D2A-HMR, HMDiff)."""
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

# Ranges are the ones we test: Python 3.11 pairs with JAX 0.10.x (the last line that supports it);
# Python 3.12+ may use newer JAX. `constraints.txt` pins the exact set CI installs.
INSTALL_REQUIRES = [
    "jax>=0.10.0",
    "flax>=0.12.0",
    "optax>=0.2.5",
    "orbax-checkpoint>=0.11.0",
    "tensorflow-datasets>=4.9.9",  # used without TensorFlow (array_record + as_data_source)
    "grain>=0.2.12",
    "array_record>=0.8.1",         # tfds ArrayRecord reader/writer
    "importlib_resources>=6.0",    # tfds imports it but does not declare it
    "numpy>=1.26",
    "ml-collections>=1.0.0",
    "distrax>=0.1.7",
    "tfp-nightly>=0.26.0.dev20250601",  # distrax needs a TFP whose JAX substrate matches new JAX
    "scipy>=1.11",
    "pillow>=10.0",
    "tqdm>=4.66",
    "absl-py>=2.0",                   # grain worker processes need parsed absl flags
    "numba>=0.60",                    # the CPU z-buffer renderer (hmrjax.render), compiled and cached
    "opencv-python-headless>=4.9",    # crop warps in the input pipeline (~6x faster than PIL; PIL fallback)
    "scikit-image>=0.22",             # only its shipped photographs, as synthetic-scene backgrounds
]

EXTRAS = {
    "test": [
        "pytest>=8.0",
        "pytest-xdist>=3.5",
        "chex>=0.1.89",
        "nbformat>=5.9",
        "nbclient>=0.10",
        "ipykernel>=6.29",
    ],
    # Interop tier: comparisons with the PyTorch reference implementations (CPU torch only).
    "interop": ["torch==2.13.0", "smplx>=0.1.28", "FrEIA==0.2"],  # FrEIA: the prob-HMR authors' flow library
    "notebook": ["matplotlib>=3.8", "ipykernel>=6.29"],
}

setup(
    name="hmrjax",
    version="0.1.0",
    description="JAX/Flax library for 3D human mesh recovery from a single image",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["hmrjax", "hmrjax.*", "data_pipelines", "data_pipelines.*"]),
    package_data={"hmrjax": ["body/assets/*", "nn/backbones/layouts/*.json.gz"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["hmrjax=hmrjax.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
