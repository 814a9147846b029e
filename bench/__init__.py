"""Latency, memory and accuracy of exported models in their real runtimes (issue 4).

This package must never import torch: it runs on the device.
"""
