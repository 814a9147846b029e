"""Latency, memory and accuracy of exported models in their real runtimes.

This package must never import torch: it runs on the device.
"""
