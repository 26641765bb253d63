"""carelens.store"""
