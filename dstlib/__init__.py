"""dstlib: dense and dynamic sparse training, and their robustness to corruptions."""
__version__ = "0.1.0"
