"""carelens.genomics"""
