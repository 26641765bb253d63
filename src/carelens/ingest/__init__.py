"""carelens.ingest"""
