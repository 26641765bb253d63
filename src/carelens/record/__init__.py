"""carelens.record"""
