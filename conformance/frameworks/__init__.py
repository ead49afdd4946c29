"""Helpers of test_frameworks.py: the Azure client frameworks driven through the proxy."""
