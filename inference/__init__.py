"""Inference helpers behind predict_folder.py, evaluate.py and bench/predict.py."""
