"""Latency and parity harness: timing, statistics, budget and regression gates, reports."""
