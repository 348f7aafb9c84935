"""cifar-sweeps: hyperparameter sweeps for CIFAR-10 classifiers on Ray Tune."""

__version__ = "0.1.0"
