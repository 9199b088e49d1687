"""The shared core: every concept the stages agree on, written once.

    layout         DFDC dataset layout, metadata.json parsing, stage output paths and crop names
    video          PyAV decoding keyed by true frame index, and the detector's half-size frame
    faces          MTCNN factory and thresholds, batched detection, box scaling and the crop rule
    model_input    isotropic resize, centred padding and normalisation of a face crop
    models         DeepFakeClassifier and its timm encoders (pretrained weights from file, package or hub)
    card           the model card: everything needed to score with a checkpoint
    checkpoints    checkpoint names, atomic save, strict and safe loading (2020 release format included)
    runtime        device choice, distributed init, rank slicing, seeding, threads and worker pools
    atomic         atomic file output

preprocessing/, training/ and inference (predict_folder.py, kernel_utils.py, inference/) import this package
and none of each other's internals.
"""
