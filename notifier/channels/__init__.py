"""Delivery channels: ``webhook`` (Standard Webhooks over HTTP) and ``email`` (SMTP)."""
