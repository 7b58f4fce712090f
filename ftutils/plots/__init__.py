"""Plot functions take data and return a matplotlib Figure; they never fetch data.

data.py: token lengths, label balance (02_prepare). training.py: loss and accuracy curves
(03_train). evaluation.py: confusion matrix, per-class F1, checkpoints (04_evaluate).
"""
