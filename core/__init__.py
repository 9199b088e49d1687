"""The shared core: every concept the stages agree on, written once.

    layout         DFDC dataset layout, metadata.json parsing, stage output paths and crop names
    video          PyAV decoding keyed by true frame index, and the detector's half-size frame
    faces          MTCNN factory and thresholds, batched detection, box scaling and the crop rule
    model_input    isotropic resize, centred padding and normalisation of a face crop
    models         DeepFakeClassifier and its timm encoders (pretrained weights from file, package or hub)
    card           the model card: everything needed to score with a checkpoint
    checkpoints    checkpoint names, atomic save, strict and safe loading (2020 release format included)
    runtime        device choice, distributed init, rank slicing, seeding, threads
    processes      worker pools and worker set-up that load no torch (steps 1-2), shard numbers from the environment
    allocator      the glibc malloc setting every entry point re-executes with
    landmarks68    dlib's 68-point landmark model (preprocessing and the cut-outs)
    datasets       labelled video collections: DFDC parts and test labels, FaceForensics++, Celeb-DF v2
    atomic         atomic file output
    damage         reading files that may be damaged: any parser failure becomes the reader's own named error
    settings       reading JSON settings files and naming what differs between two settings
    cli            the --help formatter every entry point uses

preprocessing/, training/ and inference (predict_folder.py, kernel_utils.py, inference/) import this package
and none of each other's internals.
"""
