"""Dagster code location: LLM releases → calibrated, compressed, evaluated, approved models."""
